// Element values: their IR types, and conversions with the VM's semantics (vm/interpreter.h):
// float -> float rounds to nearest even; float -> integer rounds to nearest even and saturates
// (NaN -> 0); integer -> integer saturates; narrow floats decode exactly.
#include <fmt/format.h>

#include "codegen/emit/kernel_emitter.h"
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
llvm::Value* decode_narrow_float(llvm::IRBuilder<>& b, llvm::Value* code, DataType type) {
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
  if (!is_standard_float(to)) {
    unsupported(fmt::format("rounding into {} is not supported on the GPU yet", to.name()));
  }
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

}  // namespace nibble::codegen
