// Conversion plans: how the GPU turns packed low-precision words into packed f16x2 / bf16x2.
//
// A plan is data: a straight-line sequence of 32-bit register operations, each one PTX
// instruction, that reads `input_words` packed source words and leaves `output_words` packed
// target words. Codegen emits the ops one for one; run_plan() executes the same ops on the CPU
// through the bit-exact instruction models of dtypes/bit_ops.h, and the tests run every plan over
// every source code in every element position and compare with decode()/encode().
//
// Input: the source elements as a little-endian bit stream (dtypes/packing.h): element i sits in
// bits [i*b, (i+1)*b) of the words, word 0 holding stream bits 0..31. When b divides 32 a plan
// reads one word (32/b elements); for b = 3, 5, 6, 7 it reads b words (32 elements).
// Output: output word w holds two target values; `output_element[2w]` (bits 0..15, "lo") and
// `output_element[2w + 1]` (bits 16..31, "hi") name the source elements that land there. The
// order is whatever is cheapest for the plan (for u4 -> f16, word 0 holds elements 0 and 4), so
// consumers must follow the mapping rather than assume element order.
//
// Registers: registers 0 .. input_words-1 hold the input words; every op writes a new register
// (single assignment), so a plan is also its own dataflow graph. Any source operand may be a
// 32-bit immediate; codegen passes it inline where PTX accepts one (lop3, prmt, shifts, add.u32,
// f32 arithmetic as 0fXXXXXXXX) and materialises the rest (f16x2 / bf16x2 constants) with a
// hoisted mov.b32.
//
// Why the plans are exact (every plan is also checked exhaustively by the tests):
//   - Integers use the magic-exponent trick: OR-ing a b-bit field x, placed at bit offset o of a
//     half, into the bits of 2^m (f16: 0x6400 = 1024, m = 10; bf16: 0x4300 = 128, m = 7) gives
//     exactly 2^m + x * 2^o while x * 2^o < 2^m, since the ulp there is 1. One fma with the
//     per-half constants 2^-o and -2^m * 2^-o (both powers of two or short sums of them, exactly
//     representable) then yields x exactly. Signed fields are first XOR-ed with their sign bit,
//     which adds 2^(b-1) (two's complement to offset binary); the fma also subtracts it.
//     bf16 has room for at most 7-bit fields, so 8-bit integers go through f32 (0x4B0000xx is
//     2^23 + x, one f32 subtract gives x, and an integer of at most 8 significant bits is exactly
//     the high half of its f32 encoding).
//   - Small floats place the sign at bit 15 and exponent|mantissa so that the source mantissa is
//     the top of the target mantissa. The bits then read, in the target format, as the source
//     value times 2^(source_bias - target_bias), subnormals included, and one multiply by
//     2^(target_bias - source_bias) (2^8 for E4M3 -> f16, at most 2^127 for bf16: powers of two,
//     exact in the arithmetic type) restores the value exactly, the product being representable.
//     f16 and bf16 .rn arithmetic keeps subnormals (PTX ISA: "subnormal numbers are supported"
//     unless .ftz, which the plans never use and bf16 ops do not even have).
//     Special codes are patched before the multiply: the E4M3 NaN (S.1111.111) and E5M2
//     infinities and NaNs get an all-ones target exponent (mantissa kept), and finite-only
//     types with 5 exponent bits, whose exponent 31 lies beyond f16's range (encode() gives
//     infinity there), get their mantissa cleared so exponent 31 reads as infinity.
//     Sources with more than 5 exponent bits have no f16 plan.
//
// The opcode set, with PTX spellings (d = dst, a/b/c = src[0..2], imm = PlanOp::imm):
//   Lop3            lop3.b32 d, a, b, c, imm           any 3-input bitwise function (sm_50)
//   Prmt            prmt.b32 d, a, b, c                byte permute, c = selector
//   Shl             shl.b32 d, a, b
//   Shr             shr.u32 d, a, b
//   ShfL            shf.l.wrap.b32 d, a, b, c          high word of {b, a} << (c & 31) (sm_32)
//   ShfR            shf.r.wrap.b32 d, a, b, c          low word of {b, a} >> (c & 31) (sm_32)
//   AddU32          add.u32 d, a, b
//   AddF16x2        add.rn.f16x2 d, a, b               (sm_53)
//   SubF16x2        sub.rn.f16x2 d, a, b               (sm_53)
//   MulF16x2        mul.rn.f16x2 d, a, b               (sm_53)
//   FmaF16x2        fma.rn.f16x2 d, a, b, c            (sm_53)
//   FmaBf16x2       fma.rn.bf16x2 d, a, b, c           (sm_80; add/sub/mul.bf16x2 need sm_90)
//   AddF32          add.rn.f32 d, a, b
//   SubF32          sub.rn.f32 d, a, b
//   MulF32          mul.rn.f32 d, a, b
//   FmaF32          fma.rn.f32 d, a, b, c
//   CvtBf16x2F32    cvt.rn.bf16x2.f32 d, a, b          hi = a, lo = b (sm_80)
//   CvtF16x2E4m3x2  cvt.rn.f16x2.e4m3x2 d, a.lo|a.hi   imm 0: bits 0..15 of a, 1: bits 16..31;
//                                                      codegen splits a with mov.b32 {lo, hi}, a
//                                                      (sm_89)
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dtypes/dtype.h"

namespace nibble::dtypes {

enum class Opcode : uint8_t {
  Lop3,
  Prmt,
  Shl,
  Shr,
  ShfL,
  ShfR,
  AddU32,
  AddF16x2,
  SubF16x2,
  MulF16x2,
  FmaF16x2,
  FmaBf16x2,
  AddF32,
  SubF32,
  MulF32,
  FmaF32,
  CvtBf16x2F32,
  CvtF16x2E4m3x2,
};

// The PTX instruction name, e.g. "lop3.b32" or "fma.rn.bf16x2".
std::string_view ptx_name(Opcode op);
// How many of src[0..2] the instruction reads.
int source_count(Opcode op);
// The oldest GPU architecture (sm_XY as XY) whose PTX has the instruction.
int min_sm(Opcode op);

// A source operand: a register, a 32-bit immediate, or nothing (unused slot).
struct Operand {
  enum class Kind : uint8_t { None, Register, Immediate };
  Kind kind = Kind::None;
  uint32_t value = 0;  // the register index, or the immediate's bits

  static Operand reg(int index) { return {Kind::Register, static_cast<uint32_t>(index)}; }
  static Operand imm(uint32_t bits) { return {Kind::Immediate, bits}; }
  bool is_register() const { return kind == Kind::Register; }
  bool is_immediate() const { return kind == Kind::Immediate; }
  friend bool operator==(const Operand&, const Operand&) = default;
};

// One instruction: dst = op(src[0], src[1], src[2]) with the extra immediate `imm` (the immLut
// of Lop3, the half selector of CvtF16x2E4m3x2, 0 otherwise).
struct PlanOp {
  Opcode op;
  int dst;
  std::array<Operand, 3> src;
  uint32_t imm = 0;
};

struct ConversionPlan {
  DataType source;
  DataType target;  // f16 or bf16
  int input_words;
  int output_words;
  int register_count;                 // registers 0 .. input_words-1 are the inputs
  std::vector<PlanOp> ops;            // in execution order
  std::vector<int> output_registers;  // output word w is register output_registers[w]
  std::vector<int> output_element;    // half slot 2w + h -> source element index
  std::string description;            // one line: the technique
  int min_sm;                         // the max of min_sm() over the ops

  int element_count() const { return 2 * output_words; }
};

// The plan converting `source` to `target` on sm_`sm` GPUs, or nothing when there is none:
// targets are f16 and bf16; sources are u1..u8, i1..i8, f8e4m3, f8e5m2 and every fNeXmY of at
// most 8 bits (to f16 only with at most 5 exponent bits). Plans are built on each call.
std::optional<ConversionPlan> find_conversion_plan(DataType source, DataType target, int sm = 80);

// Runs the plan on the CPU with the bit_ops.h instruction models. Throws std::invalid_argument
// unless input_words.size() == plan.input_words.
std::vector<uint32_t> run_plan(const ConversionPlan& plan, std::span<const uint32_t> input_words);

// A PTX-like listing: a header (types, words, sm, element mapping), then one instruction a line.
std::string to_string(const ConversionPlan& plan);

}  // namespace nibble::dtypes
