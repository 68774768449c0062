#include "codegen/smoke_kernel.h"

#include <llvm/IR/CallingConv.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/IntrinsicsNVPTX.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

namespace nibble::codegen {

SmokeKernel build_smoke_kernel(const Target& target) {
  llvm::LLVMContext context;
  llvm::Module module("nibble_smoke", context);
  configure_module_for_target(module, target);
  llvm::IRBuilder<> builder(context);

  llvm::Type* f32 = builder.getFloatTy();
  llvm::Type* i32 = builder.getInt32Ty();
  llvm::PointerType* global_ptr = llvm::PointerType::get(context, /*AddressSpace=*/1);
  auto* signature =
      llvm::FunctionType::get(builder.getVoidTy(), {global_ptr, global_ptr, f32, i32}, false);
  llvm::Function* kernel =
      llvm::Function::Create(signature, llvm::Function::ExternalLinkage, kSmokeKernelName, module);
  kernel->setCallingConv(llvm::CallingConv::PTX_Kernel);
  llvm::Argument* y = kernel->getArg(0);
  llvm::Argument* x = kernel->getArg(1);
  llvm::Argument* a = kernel->getArg(2);
  llvm::Argument* n = kernel->getArg(3);
  y->setName("y");
  x->setName("x");
  a->setName("a");
  n->setName("n");
  x->addAttr(llvm::Attribute::NoAlias);
  y->addAttr(llvm::Attribute::NoAlias);

  auto* entry = llvm::BasicBlock::Create(context, "entry", kernel);
  auto* body = llvm::BasicBlock::Create(context, "in_bounds", kernel);
  auto* exit = llvm::BasicBlock::Create(context, "exit", kernel);
  builder.SetInsertPoint(entry);
  auto read = [&](llvm::Intrinsic::ID id) { return builder.CreateIntrinsic(id, {}, {}); };
  llvm::Value* index =
      builder.CreateAdd(builder.CreateMul(read(llvm::Intrinsic::nvvm_read_ptx_sreg_ctaid_x),
                                          read(llvm::Intrinsic::nvvm_read_ptx_sreg_ntid_x)),
                        read(llvm::Intrinsic::nvvm_read_ptx_sreg_tid_x), "i");
  builder.CreateCondBr(builder.CreateICmpSLT(index, n), body, exit);

  builder.SetInsertPoint(body);
  llvm::Value* offset = builder.CreateSExt(index, builder.getInt64Ty());
  llvm::Value* x_address = builder.CreateInBoundsGEP(f32, x, offset);
  llvm::Value* y_address = builder.CreateInBoundsGEP(f32, y, offset);
  llvm::Value* updated = builder.CreateIntrinsic(
      llvm::Intrinsic::fma, {f32},
      {a, builder.CreateLoad(f32, x_address), builder.CreateLoad(f32, y_address)});
  builder.CreateStore(updated, y_address);
  builder.CreateBr(exit);

  builder.SetInsertPoint(exit);
  builder.CreateRetVoid();

  SmokeKernel result;
  result.llvm_ir = module_to_text(module);
  result.ptx = emit_ptx(module, target, default_llvm_pipeline(), &result.times);
  return result;
}

}  // namespace nibble::codegen
