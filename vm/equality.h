// Structural equality of programs: what "parse_program(print(p)) == p" (vm/printer.h) promises.
//
// Two programs are equal when every field is: names, parameters, grid, tensor table (names,
// types, locations), statements with their locations, and every instruction field. Expressions
// compare as Expr's operator== does (same tree, same leaf names and ids); doubles (fill values,
// `other`) compare bit for bit, so a NaN fill equals itself and -0 differs from 0.
//
// Free functions, so that program.h stays the bare data model; should its structs ever default
// their own operator==, this file goes (the two would be ambiguous).
#pragma once

#include "vm/program.h"

namespace nibble::vm {

bool operator==(const GlobalView& a, const GlobalView& b);
bool operator==(const AllocShared& a, const AllocShared& b);
bool operator==(const AllocRegister& a, const AllocRegister& b);
bool operator==(const LoadGlobal& a, const LoadGlobal& b);
bool operator==(const StoreGlobal& a, const StoreGlobal& b);
bool operator==(const LoadShared& a, const LoadShared& b);
bool operator==(const StoreShared& a, const StoreShared& b);
bool operator==(const CopyAsync& a, const CopyAsync& b);
bool operator==(const CommitGroup& a, const CommitGroup& b);
bool operator==(const WaitGroup& a, const WaitGroup& b);
bool operator==(const Barrier& a, const Barrier& b);
bool operator==(const Cast& a, const Cast& b);
bool operator==(const View& a, const View& b);
bool operator==(const Slice& a, const Slice& b);
bool operator==(const Repeat& a, const Repeat& b);
bool operator==(const Permute& a, const Permute& b);
bool operator==(const Reshape& a, const Reshape& b);
bool operator==(const Elementwise& a, const Elementwise& b);
bool operator==(const Reduce& a, const Reduce& b);
bool operator==(const Dot& a, const Dot& b);
bool operator==(const WaitDots& a, const WaitDots& b);
bool operator==(const Shuffle& a, const Shuffle& b);
bool operator==(const AtomicAdd& a, const AtomicAdd& b);
bool operator==(const Print& a, const Print& b);

bool operator==(const ForStmt& a, const ForStmt& b);
bool operator==(const IfStmt& a, const IfStmt& b);
bool operator==(const WhileStmt& a, const WhileStmt& b);
bool operator==(const BreakStmt& a, const BreakStmt& b);
bool operator==(const LetStmt& a, const LetStmt& b);
bool operator==(const AssignStmt& a, const AssignStmt& b);
bool operator==(const FetchAddStmt& a, const FetchAddStmt& b);
bool operator==(const Statement& a, const Statement& b);

bool operator==(const TensorInfo& a, const TensorInfo& b);
bool operator==(const Program& a, const Program& b);

}  // namespace nibble::vm
