// A bit-exact CPU model of the GPU instructions that conversion plans use.
//
// Every function is pure and works on the same 32-bit registers the GPU does, so a plan run
// through these functions produces, bit for bit, what the PTX instructions produce. The PTX ISA
// spelling of each instruction is given next to its model.
//
// Packed halves: in an f16x2 / bf16x2 register the element in bits [0, 16) is "lo", the one in
// bits [16, 32) is "hi"; packed instructions work on both independently.
//
// Floating point: every arithmetic result is the exact real result rounded once, to nearest with
// ties to even, into the destination format (a fused multiply-add rounds once, not twice).
// Subnormal inputs and results are kept: the PTX ISA documents that f16/bf16 add, sub, mul and
// fma and f32 arithmetic without .ftz support subnormal numbers. Overflow rounds to infinity.
// A NaN result is the canonical NaN: 0x7FFF for f16 and bf16 halves, 0x7FFFFFFF for f32; the
// sign of zero follows IEEE 754 (x + (-x) = +0, -0 + -0 = -0, the sign of a product is the xor
// of the signs).
#pragma once

#include <cstdint>

namespace nibble::dtypes {

// --- Logic and shifts ----------------------------------------------------------------------------

// lop3.b32 d, a, b, c, immLut: any 3-input boolean function, bit by bit. Bit i of `lut` is the
// result for the inputs (a, b, c) with i = 4a + 2b + c, so the table of a function F is
// F(0xF0, 0xCC, 0xAA); e.g. a & b | c is 0xEA and a & b ^ c is 0x6A.
uint32_t lop3(uint32_t a, uint32_t b, uint32_t c, uint8_t lut);

// The immLut of a function written on the three constants, e.g. lop3_lut(kLopA & kLopB | kLopC).
inline constexpr uint8_t kLopA = 0xF0;
inline constexpr uint8_t kLopB = 0xCC;
inline constexpr uint8_t kLopC = 0xAA;
constexpr uint8_t lop3_lut(int function_of_constants) {
  return static_cast<uint8_t>(function_of_constants & 0xFF);
}

// prmt.b32 d, a, b, c (default mode): picks 4 bytes out of the 8 bytes {b, a} (byte 0 = low byte
// of a, byte 7 = high byte of b). Nibble i of `selector` (its low 16 bits) chooses result byte i:
// bits 0-2 index the source byte, bit 3 set means "replicate the sign (bit 7) of that byte over
// all 8 bits" instead of copying it.
uint32_t prmt(uint32_t a, uint32_t b, uint32_t selector);

// shl.b32 d, a, n and shr.u32 d, a, n: shift amounts of 32 or more give 0 (PTX clamps them).
uint32_t shl_b32(uint32_t a, uint32_t n);
uint32_t shr_u32(uint32_t a, uint32_t n);

// shf.r.wrap.b32 d, a, b, n: the low 32 bits of the 64-bit {b, a} shifted right by n & 31.
// shf.l.wrap.b32 d, a, b, n: the high 32 bits of the 64-bit {b, a} shifted left by n & 31.
uint32_t shf_r_wrap(uint32_t a, uint32_t b, uint32_t n);
uint32_t shf_l_wrap(uint32_t a, uint32_t b, uint32_t n);

// add.u32 d, a, b: modulo 2^32.
uint32_t add_u32(uint32_t a, uint32_t b);

// --- Scalar IEEE arithmetic (one lane) -----------------------------------------------------------

uint16_t add_f16(uint16_t a, uint16_t b);              // add.rn.f16
uint16_t sub_f16(uint16_t a, uint16_t b);              // sub.rn.f16
uint16_t mul_f16(uint16_t a, uint16_t b);              // mul.rn.f16
uint16_t fma_f16(uint16_t a, uint16_t b, uint16_t c);  // fma.rn.f16: a * b + c

uint16_t add_bf16(uint16_t a, uint16_t b);  // add.rn.bf16 (sm_90; equals fma.rn.bf16 a, 1.0, b)
uint16_t sub_bf16(uint16_t a, uint16_t b);  // sub.rn.bf16 (sm_90; equals fma.rn.bf16 b, -1.0, a)
uint16_t mul_bf16(uint16_t a, uint16_t b);  // mul.rn.bf16 (sm_90; equals fma.rn.bf16 a, b, -0.0)
uint16_t fma_bf16(uint16_t a, uint16_t b, uint16_t c);  // fma.rn.bf16 (sm_80)

uint32_t add_f32(uint32_t a, uint32_t b);              // add.rn.f32
uint32_t sub_f32(uint32_t a, uint32_t b);              // sub.rn.f32
uint32_t mul_f32(uint32_t a, uint32_t b);              // mul.rn.f32
uint32_t fma_f32(uint32_t a, uint32_t b, uint32_t c);  // fma.rn.f32

// --- Packed arithmetic: the scalar operation on lo and hi independently -------------------------

uint32_t add_f16x2(uint32_t a, uint32_t b);              // add.rn.f16x2 (sm_53)
uint32_t sub_f16x2(uint32_t a, uint32_t b);              // sub.rn.f16x2 (sm_53)
uint32_t mul_f16x2(uint32_t a, uint32_t b);              // mul.rn.f16x2 (sm_53)
uint32_t fma_f16x2(uint32_t a, uint32_t b, uint32_t c);  // fma.rn.f16x2 (sm_53)

uint32_t add_bf16x2(uint32_t a, uint32_t b);              // add.rn.bf16x2 (sm_90)
uint32_t sub_bf16x2(uint32_t a, uint32_t b);              // sub.rn.bf16x2 (sm_90)
uint32_t mul_bf16x2(uint32_t a, uint32_t b);              // mul.rn.bf16x2 (sm_90)
uint32_t fma_bf16x2(uint32_t a, uint32_t b, uint32_t c);  // fma.rn.bf16x2 (sm_80)

// --- Conversions ---------------------------------------------------------------------------------

// cvt.f32.f16 d, a: exact.
uint32_t cvt_f32_f16(uint16_t a);
// cvt.rn.bf16.f32 d, a and cvt.rn.f16.f32 d, a: one rounding, NaN becomes the canonical NaN.
uint16_t cvt_rn_bf16_f32(uint32_t a);
uint16_t cvt_rn_f16_f32(uint32_t a);
// cvt.rn.bf16x2.f32 d, a, b: hi = cvt(a), lo = cvt(b) (note the order: the first source is hi).
uint32_t cvt_rn_bf16x2_f32(uint32_t a, uint32_t b);
// cvt.rn.f16x2.e4m3x2 d, a and cvt.rn.f16x2.e5m2x2 d, a (sm_89): the two 8-bit floats in the
// 16-bit a (low byte -> lo, high byte -> hi) converted exactly; an E4M3 NaN (S.1111.111) or
// E5M2 NaN becomes the canonical f16 NaN, E5M2 infinities stay infinities.
uint32_t cvt_rn_f16x2_e4m3x2(uint16_t a);
uint32_t cvt_rn_f16x2_e5m2x2(uint16_t a);

}  // namespace nibble::dtypes
