// Element values: their IR types, and conversions with the VM's semantics (vm/interpreter.h):
// float -> float rounds to nearest even; float -> integer rounds to nearest even and saturates
// (NaN -> 0); integer -> integer saturates; narrow floats decode exactly; anything into a float
// of at most 8 bits is encoded bit by bit as dtypes::encode does (round to nearest even,
// saturating or to inf, canonical NaN).
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "codegen/emit/kernel_emitter.h"
#include "codegen/small_float_cast.h"
#include "dtypes/codec.h"

namespace nibble::codegen {

bool KernelEmitter::exact_in_f32(DataType type) {
  if (type.is_float()) return type.mantissa_bits() <= 23 && type.exponent_bits() <= 8;
  return type.bits() <= 24;
}

llvm::Type* KernelEmitter::value_type(DataType type) {
  if (type.is_float()) {
    if (type == DataType::f16()) return builder.getHalfTy();
    if (type == DataType::bf16()) return builder.getBFloatTy();
    if (type == DataType::f32()) return builder.getFloatTy();
    if (type == DataType::f64()) return builder.getDoubleTy();
    if (type.bits() <= 8) return i8();
    unsupported(fmt::format("element type {}", type.name()));
  }
  if (type.bits() <= 8) return i8();
  return builder.getIntNTy(static_cast<unsigned>(type.bits()));
}

llvm::Value* KernelEmitter::to_bits(llvm::Value* value) {
  llvm::Type* type = value->getType();
  if (type->isIntegerTy()) return value;
  return builder.CreateBitCast(
      value,
      builder.getIntNTy(static_cast<unsigned>(type->getPrimitiveSizeInBits().getFixedValue())));
}

llvm::Value* KernelEmitter::from_bits(llvm::Value* bits, DataType type) {
  llvm::Type* target_type = value_type(type);
  const auto width = static_cast<unsigned>(target_type->getPrimitiveSizeInBits().getFixedValue());
  llvm::Value* value = builder.CreateZExtOrTrunc(bits, builder.getIntNTy(width));
  if (type.bits() < 8) value = builder.CreateAnd(value, static_cast<uint64_t>(type.bit_mask()));
  return target_type->isIntegerTy() ? value : builder.CreateBitCast(value, target_type);
}

llvm::Value* KernelEmitter::constant_value(DataType type, uint64_t code) {
  llvm::Type* target_type = value_type(type);
  const auto width = static_cast<unsigned>(target_type->getPrimitiveSizeInBits().getFixedValue());
  llvm::Constant* bits = llvm::ConstantInt::get(builder.getIntNTy(width), code);
  if (target_type->isIntegerTy()) return bits;
  return llvm::ConstantExpr::getBitCast(bits, target_type);
}

llvm::Value* KernelEmitter::to_integer(llvm::Value* value, DataType type, llvm::Type* width) {
  if (!type.is_integer()) unsupported(fmt::format("{} is not an integer type", type.name()));
  if (type.bits() < 8 && type.is_signed()) {
    const auto shift = static_cast<uint64_t>(8 - type.bits());
    value = builder.CreateAShr(builder.CreateShl(value, shift), shift);
  }
  return type.is_signed() ? builder.CreateSExtOrTrunc(value, width)
                          : builder.CreateZExtOrTrunc(value, width);
}

namespace {

// Exact decoding of a float of at most 8 bits (its code in an i8) to f32.
llvm::Value* decode_narrow_float(llvm::IRBuilderBase& b, llvm::Value* code, DataType type) {
  const int e_bits = type.exponent_bits();
  const int m_bits = type.mantissa_bits();
  const int bias = type.exponent_bias();
  llvm::Value* c = b.CreateZExt(code, b.getInt32Ty());
  llvm::Value* sign = b.CreateAnd(b.CreateLShr(c, static_cast<uint64_t>(e_bits + m_bits)), 1);
  llvm::Value* exponent =
      b.CreateAnd(b.CreateLShr(c, static_cast<uint64_t>(m_bits)), (1u << e_bits) - 1);
  llvm::Value* mantissa = b.CreateAnd(c, (1u << m_bits) - 1);
  // Normal: the f32 encoding with the exponent rebiased and the mantissa at the top.
  llvm::Value* normal_bits = b.CreateOr(
      b.CreateShl(b.CreateAdd(exponent, b.getInt32(static_cast<uint32_t>(127 - bias))), 23),
      b.CreateShl(mantissa, static_cast<uint64_t>(23 - m_bits)));
  llvm::Value* normal = b.CreateBitCast(normal_bits, b.getFloatTy());
  // Subnormal: mantissa * 2^(1 - bias - m_bits), exact.
  llvm::Value* subnormal =
      b.CreateFMul(b.CreateUIToFP(mantissa, b.getFloatTy()),
                   llvm::ConstantFP::get(b.getFloatTy(), std::ldexp(1.0, 1 - bias - m_bits)));
  llvm::Value* magnitude =
      b.CreateSelect(b.CreateICmpEQ(exponent, b.getInt32(0)), subnormal, normal);
  const uint32_t top = (1u << e_bits) - 1;
  if (type.has_inf()) {
    llvm::Value* special = b.CreateICmpEQ(exponent, b.getInt32(top));
    llvm::Value* inf_or_nan = b.CreateSelect(b.CreateICmpEQ(mantissa, b.getInt32(0)),
                                             llvm::ConstantFP::getInfinity(b.getFloatTy()),
                                             llvm::ConstantFP::getNaN(b.getFloatTy()));
    magnitude = b.CreateSelect(special, inf_or_nan, magnitude);
  } else if (type.has_nan()) {
    llvm::Value* nan = b.CreateAnd(b.CreateICmpEQ(exponent, b.getInt32(top)),
                                   b.CreateICmpEQ(mantissa, b.getInt32((1u << m_bits) - 1)));
    magnitude = b.CreateSelect(nan, llvm::ConstantFP::getNaN(b.getFloatTy()), magnitude);
  }
  return b.CreateSelect(b.CreateICmpNE(sign, b.getInt32(0)), b.CreateFNeg(magnitude), magnitude);
}

bool is_standard_float(DataType type) {
  return type == DataType::f16() || type == DataType::bf16() || type == DataType::f32() ||
         type == DataType::f64();
}

// The fields of a standard binary float format, as its bits.
struct IeeeFormat {
  unsigned width;
  unsigned exponent_bits;
  unsigned mantissa_bits;
  int bias() const { return (1 << (exponent_bits - 1)) - 1; }
};

IeeeFormat ieee_format_of(llvm::Type* type) {
  if (type->isDoubleTy()) return {64, 11, 52};
  if (type->isFloatTy()) return {32, 8, 23};
  if (type->isBFloatTy()) return {16, 8, 7};
  return {16, 5, 10};
}

// The code of a float of at most 8 bits nearest to the finite, normal binary float whose
// fields are given (sign aside), with dtypes::encode's rounding: the value scaled to units of the
// target's quantum at its binade, rounded to nearest with ties to the even code (consecutive
// codes are consecutive values, so rounding up is "code + 1" across binades too). The result may
// exceed the largest finite code; the caller saturates. Works in `int_type` (i32 or i64), where
// every intermediate fits.
llvm::Value* round_normal_magnitude(llvm::IRBuilderBase& b, llvm::Value* exponent,
                                    llvm::Value* mantissa, IeeeFormat from, DataType to) {
  llvm::Type* int_type = exponent->getType();
  auto constant = [&](int64_t v) { return llvm::ConstantInt::get(int_type, v, true); };
  const int m = to.mantissa_bits();
  const int target_bias = to.exponent_bias();
  llvm::Value* significand =
      b.CreateOr(mantissa, constant(int64_t{1} << from.mantissa_bits));  // the implicit 1
  // Below the target's smallest normal binade the quantum stays that of the subnormals: the
  // shift grows by how far the binade lies below it.
  const int64_t lowest_normal_field = 1 - target_bias + from.bias();  // in source exponent units
  llvm::Value* below = b.CreateSub(constant(lowest_normal_field), exponent);
  llvm::Value* extra = b.CreateSelect(b.CreateICmpSGT(below, constant(0)), below, constant(0));
  llvm::Value* shift = b.CreateAdd(extra, constant(from.mantissa_bits - m));
  // A shift past the significand's top bit rounds to zero anyway; clamping keeps shifts defined.
  const int64_t max_shift = from.mantissa_bits + 2;
  shift = b.CreateSelect(b.CreateICmpSGT(shift, constant(max_shift)), constant(max_shift), shift);
  llvm::Value* whole = b.CreateLShr(significand, shift);
  llvm::Value* remainder = b.CreateSub(significand, b.CreateShl(whole, shift));
  llvm::Value* half = b.CreateShl(constant(1), b.CreateSub(shift, constant(1)));
  // Normal results: the biased target exponent minus one, above `whole` (which holds the
  // implicit 1); subnormal results: `whole` alone.
  llvm::Value* biased = b.CreateAdd(exponent, constant(target_bias - from.bias()));
  llvm::Value* exponent_part = b.CreateSelect(b.CreateICmpSGT(biased, constant(1)),
                                              b.CreateSub(biased, constant(1)), constant(0));
  llvm::Value* code = b.CreateAdd(b.CreateShl(exponent_part, static_cast<uint64_t>(m)), whole);
  llvm::Value* odd = b.CreateICmpNE(b.CreateAnd(code, constant(1)), constant(0));
  llvm::Value* round_up = b.CreateOr(b.CreateICmpUGT(remainder, half),
                                     b.CreateAnd(b.CreateICmpEQ(remainder, half), odd));
  return b.CreateAdd(code, b.CreateZExt(round_up, int_type));
}

// The code of a small float (at most 8 bits) nearest to a value of a standard float type, as
// dtypes::encode rounds it: nearest even, overflow to inf or saturated, NaN to the canonical NaN.
llvm::Value* encode_small_float(llvm::IRBuilderBase& b, llvm::Value* real, DataType to) {
  // f16 widens to f32 exactly (its subnormals become normals) except that a NaN may lose its
  // sign; the sign is taken from the f16 bits.
  llvm::Value* sign_source = real;
  if (real->getType()->isHalfTy()) real = b.CreateFPExt(real, b.getFloatTy());
  const IeeeFormat from = ieee_format_of(real->getType());
  llvm::Type* int_type = from.width > 32 ? b.getInt64Ty() : b.getInt32Ty();
  auto constant = [&](int64_t v) { return llvm::ConstantInt::get(int_type, v, true); };
  llvm::Value* bits = b.CreateZExt(b.CreateBitCast(real, b.getIntNTy(from.width)), int_type);
  const int64_t exponent_ones = (int64_t{1} << from.exponent_bits) - 1;
  llvm::Value* exponent = b.CreateAnd(b.CreateLShr(bits, static_cast<uint64_t>(from.mantissa_bits)),
                                      constant(exponent_ones));
  llvm::Value* mantissa = b.CreateAnd(bits, constant((int64_t{1} << from.mantissa_bits) - 1));

  const uint64_t largest = dtypes::encode(to, dtypes::largest_finite(to));
  const uint64_t overflow =
      to.has_inf() ? dtypes::encode(to, std::numeric_limits<double>::infinity()) : largest;
  // NaN: the type's canonical NaN; types without NaN saturate (the interpreter rejects a NaN
  // bound for them, codec.h, so no program that runs there reaches this).
  const uint64_t nan = to.has_nan() ? dtypes::canonical_nan_bits(to) : largest;
  llvm::Value* code = round_normal_magnitude(b, exponent, mantissa, from, to);
  code = b.CreateSelect(b.CreateICmpUGT(code, constant(static_cast<int64_t>(largest))),
                        constant(static_cast<int64_t>(overflow)), code);
  // Subnormal sources (below 2^-126) lie below half the smallest value of every type of at most
  // 8 bits (2^-62 at most for f8e7m0): they round to zero.
  code = b.CreateSelect(b.CreateICmpEQ(exponent, constant(0)), constant(0), code);
  llvm::Value* special = b.CreateICmpEQ(exponent, constant(exponent_ones));
  llvm::Value* is_nan = b.CreateICmpNE(mantissa, constant(0));
  code = b.CreateSelect(special,
                        b.CreateSelect(is_nan, constant(static_cast<int64_t>(nan)),
                                       constant(static_cast<int64_t>(overflow))),
                        code);
  const auto source_width =
      static_cast<unsigned>(sign_source->getType()->getPrimitiveSizeInBits().getFixedValue());
  llvm::Value* source_bits = b.CreateBitCast(sign_source, b.getIntNTy(source_width));
  llvm::Value* negative =
      b.CreateICmpSLT(source_bits, llvm::ConstantInt::get(source_bits->getType(), 0));
  code = b.CreateOr(code,
                    b.CreateSelect(negative, constant(int64_t{1} << (to.bits() - 1)), constant(0)));
  return b.CreateTrunc(code, b.getInt8Ty());
}

// An integer element's value as f32 when that is exact, else as f64 (which rounds i64 as the
// interpreter's double does).
llvm::Value* integer_as_real(llvm::IRBuilderBase& b, llvm::Value* value, DataType from) {
  llvm::Type* real_type = from.bits() <= 24 ? b.getFloatTy() : b.getDoubleTy();
  if (from.bits() == 1 && !from.is_signed()) return b.CreateUIToFP(value, real_type);
  const unsigned container = value->getType()->getIntegerBitWidth();
  if (from.is_signed() && static_cast<unsigned>(from.bits()) < container) {
    const uint64_t shift = container - static_cast<unsigned>(from.bits());
    value = b.CreateAShr(b.CreateShl(value, shift), shift);
  }
  return from.is_signed() ? b.CreateSIToFP(value, real_type) : b.CreateUIToFP(value, real_type);
}

// cast of one element into a small float: encode(to, decode(from, x)) with nothing rounded twice
// (standard floats are encoded from their own bits, narrow floats decode exactly to f32,
// integers convert exactly or as the interpreter's double does).
llvm::Value* cast_into_small_float(llvm::IRBuilderBase& b, llvm::Value* value, DataType from,
                                   DataType to) {
  if (from.is_integer()) return encode_small_float(b, integer_as_real(b, value, from), to);
  if (is_standard_float(from)) return encode_small_float(b, value, to);
  return encode_small_float(b, decode_narrow_float(b, value, from), to);
}

}  // namespace

llvm::Value* KernelEmitter::to_real(llvm::Value* value, DataType type, llvm::Type* compute) {
  if (type.is_integer()) {
    if (type.bits() == 1 && !type.is_signed()) return builder.CreateUIToFP(value, compute);
    llvm::Value* integer = to_integer(value, type, type.bits() > 32 ? i64() : i32());
    return type.is_signed() ? builder.CreateSIToFP(integer, compute)
                            : builder.CreateUIToFP(integer, compute);
  }
  if (is_standard_float(type)) {
    if (value->getType() == compute) return value;
    if (type == DataType::bf16() && compute->isDoubleTy()) {
      value = builder.CreateFPExt(value, builder.getFloatTy());
    }
    return builder.CreateFPCast(value, compute);
  }
  llvm::Value* real = decode_narrow_float(builder, value, type);
  return compute->isFloatTy() ? real : builder.CreateFPExt(real, compute);
}

llvm::Value* KernelEmitter::round_real(llvm::Value* real, DataType to) {
  if (!is_standard_float(to)) return encode_small_float(builder, real, to);
  llvm::Type* target_type = value_type(to);
  if (real->getType() == target_type) return real;
  return builder.CreateFPCast(real, target_type);
}

llvm::Value* KernelEmitter::wrap_integer(llvm::Value* wide, DataType to) {
  llvm::Value* value = builder.CreateTrunc(wide, value_type(to));
  if (to.bits() < 8) value = builder.CreateAnd(value, static_cast<uint64_t>(to.bit_mask()));
  return value;
}

llvm::Value* KernelEmitter::convert(llvm::Value* value, DataType from, DataType to) {
  if (from == to) return value;
  if (to.is_float() && !is_standard_float(to))
    return cast_into_small_float(builder, value, from, to);
  if (from.is_integer() && to.is_integer()) {
    llvm::Value* wide = to_integer(value, from, i64());
    const int64_t highest =
        to.is_signed() ? (to.bits() == 64 ? INT64_MAX : (int64_t{1} << (to.bits() - 1)) - 1)
                       : static_cast<int64_t>(to.bit_mask());
    const int64_t lowest = to.is_signed() ? -highest - 1 : 0;
    wide = builder.CreateBinaryIntrinsic(llvm::Intrinsic::smax, wide, const_i64(lowest));
    wide = builder.CreateBinaryIntrinsic(llvm::Intrinsic::smin, wide, const_i64(highest));
    return wrap_integer(wide, to);
  }
  if (from.is_integer()) {
    if (!is_standard_float(to))
      unsupported(fmt::format("cast from {} to {}", from.name(), to.name()));
    if (from.bits() == 1 && !from.is_signed()) return builder.CreateUIToFP(value, value_type(to));
    llvm::Value* integer = to_integer(value, from, from.bits() > 32 ? i64() : i32());
    return from.is_signed() ? builder.CreateSIToFP(integer, value_type(to))
                            : builder.CreateUIToFP(integer, value_type(to));
  }
  llvm::Type* compute =
      (from.bits() > 32 || to.bits() > 32) ? builder.getDoubleTy() : builder.getFloatTy();
  llvm::Value* real = to_real(value, from, compute);
  if (to.is_float()) return round_real(real, to);
  // float -> integer: nearest even, saturating, NaN -> 0.
  llvm::Value* rounded = builder.CreateUnaryIntrinsic(llvm::Intrinsic::roundeven, real);
  llvm::Value* wide =
      builder.CreateIntrinsic(llvm::Intrinsic::fptosi_sat, {i64(), compute}, {rounded});
  const int64_t highest = to.is_signed()
                              ? (to.bits() == 64 ? INT64_MAX : (int64_t{1} << (to.bits() - 1)) - 1)
                              : static_cast<int64_t>(to.bit_mask());
  const int64_t lowest = to.is_signed() ? -highest - 1 : 0;
  wide = builder.CreateBinaryIntrinsic(llvm::Intrinsic::smax, wide, const_i64(lowest));
  wide = builder.CreateBinaryIntrinsic(llvm::Intrinsic::smin, wide, const_i64(highest));
  return wrap_integer(wide, to);
}

std::vector<uint64_t> fold_cast_into_small_float(DataType from, std::span<const uint64_t> codes,
                                                 DataType to) {
  llvm::LLVMContext context;
  llvm::Module module("fold_cast", context);
  llvm::IRBuilder<> builder(context);
  // An insertion point, so that an operation that fails to fold is caught below, not a crash.
  auto* function = llvm::Function::Create(llvm::FunctionType::get(builder.getVoidTy(), false),
                                          llvm::Function::ExternalLinkage, "fold", module);
  builder.SetInsertPoint(llvm::BasicBlock::Create(context, "entry", function));
  llvm::Type* type = builder.getInt8Ty();
  if (from == DataType::f16()) type = builder.getHalfTy();
  if (from == DataType::bf16()) type = builder.getBFloatTy();
  if (from == DataType::f32()) type = builder.getFloatTy();
  if (from == DataType::f64()) type = builder.getDoubleTy();
  if (from.is_integer() && from.bits() > 8) {
    type = builder.getIntNTy(static_cast<unsigned>(from.bits()));
  }
  const auto width = static_cast<unsigned>(type->getPrimitiveSizeInBits().getFixedValue());
  std::vector<uint64_t> results;
  results.reserve(codes.size());
  for (uint64_t code : codes) {
    llvm::Constant* value = llvm::ConstantInt::get(builder.getIntNTy(width), code);
    if (!type->isIntegerTy()) value = llvm::ConstantExpr::getBitCast(value, type);
    auto* folded =
        llvm::dyn_cast<llvm::ConstantInt>(cast_into_small_float(builder, value, from, to));
    if (folded == nullptr) {
      throw CodegenError(
          fmt::format("cast from {} into {} did not fold to a constant", from.name(), to.name()));
    }
    results.push_back(folded->getZExtValue() & to.bit_mask());
  }
  return results;
}

}  // namespace nibble::codegen
