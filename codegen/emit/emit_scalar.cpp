// Scalar expressions -> IR, with the semantics of vm/expr.h and vm/expr_eval.cpp: integers wrap
// at their width, floordiv/mod round toward negative infinity, out-of-range shifts give 0 (or
// the sign), float -> integer casts truncate and saturate (NaN -> 0).
#include <fmt/format.h>
#include <llvm/IR/IntrinsicsNVPTX.h>

#include <bit>

#include "codegen/emit/kernel_emitter.h"

namespace nibble::codegen {

llvm::Type* KernelEmitter::scalar_type(DataType type) {
  if (type.is_float()) {
    switch (type.bits()) {
      case 16:
        return type == DataType::f16() ? builder.getHalfTy() : builder.getBFloatTy();
      case 32:
        return builder.getFloatTy();
      case 64:
        return builder.getDoubleTy();
      default:
        unsupported(fmt::format("a scalar of type {}", type.name()));
    }
  }
  if (type.bits() == 1) return i1();
  return builder.getIntNTy(static_cast<unsigned>(type.bits()));
}

namespace {

llvm::Value* special_register(llvm::IRBuilderBase& b, vm::Special which) {
  llvm::Intrinsic::ID id = llvm::Intrinsic::nvvm_read_ptx_sreg_ctaid_x;
  switch (which) {
    case vm::Special::BlockIdX:
      id = llvm::Intrinsic::nvvm_read_ptx_sreg_ctaid_x;
      break;
    case vm::Special::BlockIdY:
      id = llvm::Intrinsic::nvvm_read_ptx_sreg_ctaid_y;
      break;
    case vm::Special::BlockIdZ:
      id = llvm::Intrinsic::nvvm_read_ptx_sreg_ctaid_z;
      break;
    case vm::Special::GridDimX:
      id = llvm::Intrinsic::nvvm_read_ptx_sreg_nctaid_x;
      break;
    case vm::Special::GridDimY:
      id = llvm::Intrinsic::nvvm_read_ptx_sreg_nctaid_y;
      break;
    case vm::Special::GridDimZ:
      id = llvm::Intrinsic::nvvm_read_ptx_sreg_nctaid_z;
      break;
  }
  return b.CreateIntrinsic(id, {}, {});
}

}  // namespace

llvm::Value* KernelEmitter::scalar(const Expr& e) {
  const DataType type = e.type();
  switch (e.kind()) {
    case Expr::Kind::Constant:
      if (type.is_float()) return llvm::ConstantFP::get(scalar_type(type), *e.as_float());
      return llvm::ConstantInt::get(scalar_type(type), static_cast<uint64_t>(*e.as_int()), true);
    case Expr::Kind::Param: {
      const auto index = static_cast<size_t>(e.index());
      const vm::Parameter& param = program.params.at(index);
      if (param.compile_time && param.value) {
        return llvm::ConstantInt::get(scalar_type(type), static_cast<uint64_t>(*param.value), true);
      }
      if (param.kind != vm::Parameter::Kind::Scalar) {
        unsupported(fmt::format("pointer parameter '{}' used as a scalar", param.name));
      }
      return param_values[index];
    }
    case Expr::Kind::Var: {
      if (auto let = let_values.find(e.index()); let != let_values.end()) return let->second;
      auto found = variables.find(e.index());
      if (found == variables.end())
        unsupported(fmt::format("variable '{}' read before its definition", e.name()));
      return builder.CreateLoad(found->second->getAllocatedType(), found->second, e.name());
    }
    case Expr::Kind::Special: {
      llvm::Value* value = special_register(builder, e.special_register());
      return builder.CreateSExtOrTrunc(value, scalar_type(type));
    }
    case Expr::Kind::Select:
      return builder.CreateSelect(truth(e.operand(0)), scalar(e.operand(1)), scalar(e.operand(2)));
    case Expr::Kind::Unary: {
      const Expr& operand_expr = e.operand(0);
      llvm::Value* a = scalar(operand_expr);
      switch (e.unary_op()) {
        case vm::UnaryOp::Neg:
          return type.is_float() ? builder.CreateFNeg(a) : builder.CreateNeg(a);
        case vm::UnaryOp::Not:
          return builder.CreateNot(
              builder.CreateICmpNE(a, llvm::Constant::getNullValue(a->getType())));
        case vm::UnaryOp::BitNot:
          return builder.CreateNot(a);
        case vm::UnaryOp::Cast: {
          const DataType from = operand_expr.type();
          llvm::Type* to_type = scalar_type(type);
          if (from.bits() == 1) a = builder.CreateZExt(a, i8());
          if (type.is_float()) {
            if (from.is_float()) return builder.CreateFPCast(a, to_type);
            return from.is_signed() ? builder.CreateSIToFP(a, to_type)
                                    : builder.CreateUIToFP(a, to_type);
          }
          if (from.is_float()) {
            if (type.bits() == 1)
              return builder.CreateFCmpUNE(a, llvm::ConstantFP::get(a->getType(), 0));
            const llvm::Intrinsic::ID id =
                type.is_signed() ? llvm::Intrinsic::fptosi_sat : llvm::Intrinsic::fptoui_sat;
            return builder.CreateIntrinsic(id, {to_type, a->getType()}, {a});
          }
          if (type.bits() == 1)
            return builder.CreateICmpNE(a, llvm::Constant::getNullValue(a->getType()));
          return from.is_signed() ? builder.CreateSExtOrTrunc(a, to_type)
                                  : builder.CreateZExtOrTrunc(a, to_type);
        }
      }
      break;
    }
    case Expr::Kind::Binary:
      break;
  }
  const DataType operand_type = e.operand(0).type();
  llvm::Value* a = scalar(e.operand(0));
  llvm::Value* b = scalar(e.operand(1));
  const bool is_float = operand_type.is_float();
  const bool is_signed = operand_type.is_signed();
  using vm::BinaryOp;
  // Signed index arithmetic does not wrap (the VM's rule, as C's): LLVM may then fold what it
  // implies, such as `t0 < t0 + max(n, 1)` into true, which removes a loop's zero-trip path.
  switch (e.binary_op()) {
    case BinaryOp::Add:
      return is_float ? builder.CreateFAdd(a, b) : builder.CreateAdd(a, b, "", false, is_signed);
    case BinaryOp::Sub:
      return is_float ? builder.CreateFSub(a, b) : builder.CreateSub(a, b, "", false, is_signed);
    case BinaryOp::Mul:
      return is_float ? builder.CreateFMul(a, b) : builder.CreateMul(a, b, "", false, is_signed);
    case BinaryOp::Div:
      return builder.CreateFDiv(a, b);
    case BinaryOp::FloorDiv:
    case BinaryOp::Mod: {
      const bool floor_div = e.binary_op() == BinaryOp::FloorDiv;
      auto right = vm::bound(e.operand(1), facts);
      auto left = vm::bound(e.operand(0), facts);
      if (!is_signed || (right && right->lo > 0 && left && left->lo >= 0)) {
        return floor_div ? builder.CreateUDiv(a, b) : builder.CreateURem(a, b);
      }
      // By a power of two, floored division is an arithmetic shift and the floored remainder a
      // mask, for negative operands too: no correction, and the bits are plain to known-bits
      // analysis (a ring slot's `mod(step, 2)` is then one bit of a shared address).
      if (auto* divisor = llvm::dyn_cast<llvm::ConstantInt>(b);
          divisor != nullptr && divisor->getSExtValue() > 0 &&
          std::has_single_bit(static_cast<uint64_t>(divisor->getSExtValue()))) {
        const auto value = static_cast<uint64_t>(divisor->getSExtValue());
        if (floor_div) return builder.CreateAShr(a, std::countr_zero(value));
        return builder.CreateAnd(a, llvm::ConstantInt::get(a->getType(), value - 1));
      }
      llvm::Value* quotient = builder.CreateSDiv(a, b);
      llvm::Value* remainder = builder.CreateSRem(a, b);
      llvm::Value* zero = llvm::Constant::getNullValue(a->getType());
      llvm::Value* adjust =
          builder.CreateAnd(builder.CreateICmpNE(remainder, zero),
                            builder.CreateICmpSLT(builder.CreateXor(remainder, b), zero));
      if (floor_div) {
        return builder.CreateSub(quotient, builder.CreateZExt(adjust, a->getType()));
      }
      return builder.CreateSelect(adjust, builder.CreateAdd(remainder, b), remainder);
    }
    case BinaryOp::Min:
      if (is_float) return builder.CreateBinaryIntrinsic(llvm::Intrinsic::minnum, a, b);
      return builder.CreateBinaryIntrinsic(
          is_signed ? llvm::Intrinsic::smin : llvm::Intrinsic::umin, a, b);
    case BinaryOp::Max:
      if (is_float) return builder.CreateBinaryIntrinsic(llvm::Intrinsic::maxnum, a, b);
      return builder.CreateBinaryIntrinsic(
          is_signed ? llvm::Intrinsic::smax : llvm::Intrinsic::umax, a, b);
    case BinaryOp::Eq:
      return is_float ? builder.CreateFCmpOEQ(a, b) : builder.CreateICmpEQ(a, b);
    case BinaryOp::Ne:
      return is_float ? builder.CreateFCmpUNE(a, b) : builder.CreateICmpNE(a, b);
    case BinaryOp::Lt:
      return is_float ? builder.CreateFCmpOLT(a, b)
                      : (is_signed ? builder.CreateICmpSLT(a, b) : builder.CreateICmpULT(a, b));
    case BinaryOp::Le:
      return is_float ? builder.CreateFCmpOLE(a, b)
                      : (is_signed ? builder.CreateICmpSLE(a, b) : builder.CreateICmpULE(a, b));
    case BinaryOp::Gt:
      return is_float ? builder.CreateFCmpOGT(a, b)
                      : (is_signed ? builder.CreateICmpSGT(a, b) : builder.CreateICmpUGT(a, b));
    case BinaryOp::Ge:
      return is_float ? builder.CreateFCmpOGE(a, b)
                      : (is_signed ? builder.CreateICmpSGE(a, b) : builder.CreateICmpUGE(a, b));
    case BinaryOp::And:
      return builder.CreateAnd(a, b);
    case BinaryOp::Or:
      return builder.CreateOr(a, b);
    case BinaryOp::BitAnd:
      return builder.CreateAnd(a, b);
    case BinaryOp::BitOr:
      return builder.CreateOr(a, b);
    case BinaryOp::BitXor:
      return builder.CreateXor(a, b);
    case BinaryOp::Shl:
    case BinaryOp::Shr: {
      llvm::Value* width =
          llvm::ConstantInt::get(a->getType(), static_cast<uint64_t>(operand_type.bits()));
      llvm::Value* in_range = builder.CreateICmpULT(b, width);
      llvm::Value* safe =
          builder.CreateSelect(in_range, b, llvm::Constant::getNullValue(b->getType()));
      if (e.binary_op() == BinaryOp::Shl) {
        return builder.CreateSelect(in_range, builder.CreateShl(a, safe),
                                    llvm::Constant::getNullValue(a->getType()));
      }
      if (is_signed) {
        llvm::Value* sign = builder.CreateAShr(a, operand_type.bits() - 1);
        return builder.CreateSelect(in_range, builder.CreateAShr(a, safe), sign);
      }
      return builder.CreateSelect(in_range, builder.CreateLShr(a, safe),
                                  llvm::Constant::getNullValue(a->getType()));
    }
  }
  unsupported(fmt::format("the expression {}", vm::to_string(e)));
}

llvm::Value* KernelEmitter::scalar_i64(const Expr& e) {
  llvm::Value* value = scalar(e);
  if (!value->getType()->isIntegerTy())
    unsupported(fmt::format("{} is not an integer", vm::to_string(e)));
  return e.type().is_signed() ? builder.CreateSExtOrTrunc(value, i64())
                              : builder.CreateZExtOrTrunc(value, i64());
}

llvm::Value* KernelEmitter::scalar_i32(const Expr& e) {
  llvm::Value* value = scalar(e);
  if (!value->getType()->isIntegerTy())
    unsupported(fmt::format("{} is not an integer", vm::to_string(e)));
  return e.type().is_signed() ? builder.CreateSExtOrTrunc(value, i32())
                              : builder.CreateZExtOrTrunc(value, i32());
}

llvm::Value* KernelEmitter::truth(const Expr& e) {
  llvm::Value* value = scalar(e);
  if (value->getType()->isIntegerTy(1)) return value;
  if (value->getType()->isFloatingPointTy()) {
    return builder.CreateFCmpUNE(value, llvm::ConstantFP::get(value->getType(), 0));
  }
  return builder.CreateICmpNE(value, llvm::Constant::getNullValue(value->getType()));
}

}  // namespace nibble::codegen
