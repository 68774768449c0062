// The text format of VM programs, and its printer.
//
// One statement per line, names instead of numbers, every field of the data model spelled out:
// the form that golden tests compare, error messages quote and the kernel cache hashes.
// parse_program (vm/parser.h) reads it back to an equal program (vm/equality.h).
//
// An example, a GEMM main loop (tests/vm/test_text.cpp reads it back):
//
//   kernel gemm {
//     param a: ptr<f16> align 16
//     param b: ptr<f16> align 16
//     param c: ptr<f32> align 16
//     param m: i32
//     param n: i32 divisor 64
//     param k: i32 divisor 32
//     grid (floordiv((m + 63), 64), floordiv(n, 64), 1)
//     warps 4
//     shared_memory_bytes 8192
//
//     %A = global_view a : f16 global[m, k] strides [k, 1]  # gemm.cpp:12:3
//     %B = global_view b : f16 global[k, n] strides [n, 1]
//     %C = global_view c : f32 global[m, n] strides [n, 1]
//     %As = alloc_shared : f16 shared[64,32] @ S[(64,32):(32@smem,1@smem)] swizzle Sw<2,4,3>
//     %Bs = alloc_shared : f16 shared[32,64] @ S[(32,64):(64@smem,1@smem)]
//     %acc = alloc_register fill 0 : f32 register[64,64] @ ?
//     let m0 = (%blockIdx.x * 64)
//     let n0 = (%blockIdx.y * 64)
//     for k0 in range(0, k, 32) unroll 2 {  # gemm.cpp:20:5 in gemm_kernel
//       copy_async %As[0, 0], %A[m0, k0] shape [64, 32]
//       copy_async %Bs[0, 0], %B[k0, n0] shape [32, 64]
//       commit_group
//       wait_group 0
//       barrier
//       %a = load_shared %As[0, 0] : f16 register[64,32] @ ?
//       %b = load_shared %Bs[0, 0] : f16 register[32,64] @ ?
//       dot %acc, %a, %b
//       barrier
//     }
//     store_global %C[m0, n0], %acc
//   }
//
// Lines. A newline ends a statement; `#` starts a comment that runs to the end of the line;
// blank lines and comment lines may appear anywhere. A trailing comment on a statement's line
// (the opening line of for/if/while) that reads as a source location is that statement's
// Statement::location; any other comment is ignored:
//
//   location   := FILE ':' LINE [':' COLUMN] [' in ' FUNCTION]
//
// FILE and FUNCTION are written as they are, or as a "string" when they would not read back
// (a file name containing ':' followed by a digit, control characters, surrounding blanks).
//
// Grammar ('…' literal, [ ] optional, * repeated, | alternatives, NL a newline):
//
//   program     := 'kernel' (IDENT | STRING) '{' NL header* statement* '}'
//   header      := 'param' IDENT ':' param-type ['align' INT] ['divisor' INT] ['const']
//                  ['=' INT] NL                          (alignment in bytes; = the value)
//                | 'grid' '(' slot ',' slot ',' slot ')' NL
//                | 'warps' INT NL
//                | 'shared_memory_bytes' INT NL
//   param-type  := 'ptr' '<' DTYPE '>' | DTYPE
//   statement   := simple [location] NL | compound
//   simple      := instruction | 'break' | 'let' IDENT [':' DTYPE] '=' slot | IDENT '=' slot
//   compound    := 'for' IDENT [':' DTYPE] 'in' 'range' '(' slot ',' slot ',' slot ')'
//                      ['unroll' INT] block
//                | 'if' slot block ['else' block]
//                | 'while' slot block
//   block       := '{' [location] NL statement* '}' NL    ('} else {' joins two blocks)
//   slot        := expr | '?'                            ('?': an empty Expr)
//
// A `for` or `let` variable takes the type of its start or value unless one is written.
//
// Instructions (one mnemonic each; `%x` names a tensor; `[: type]` is written at the tensor's
// first definition and nowhere else, so a result without it updates the tensor in place):
//
//   %r = global_view PARAM [: type]
//   %r = alloc_shared [: type]
//   %r = alloc_register ['fill' NUMBER] [: type]
//   %r = load_global %g[slots] ['other' NUMBER] [: type]
//   store_global %g[slots], %v
//   %r = load_shared %s[slots] [: type]
//   store_shared %s[slots], %v
//   copy_async %s[slots], %g[slots] 'shape' '[' INT* ']' ['threads' LAYOUT]
//   commit_group
//   wait_group INT
//   barrier
//   %r = cast %x [: type]
//   %r = view %x [: type]
//   %r = slice %x[INT, …] [: type]
//   %r = repeat %x 'axis' INT 'count' INT [: type]
//   %r = permute %x 'dims' '[' INT* ']' [: type]
//   %r = reshape %x [: type]
//   %r = OP operand, … [: type]    OP: neg abs exp2 log2 rsqrt add sub mul div max min eq ne lt
//                                  le gt ge fma where; operand: %tensor or a scalar expr
//   %r = reduce (sum|max|min) %x 'axis' INT [: type]
//   dot %acc, %a, %b['[' slots ']' ['transposed'] ['async']]   (offsets: a shared b in place)
//   wait_dots INT
//   %r = shuffle (xor|up|down|index) %x 'lane' slot [: type]
//   atomic_add %g[slots], %v
//   print STRING [, %x] [, expr]
//
// Types, as vm::to_string(TensorType) writes them (the printer also writes a swizzle on a
// register type that has one, so that no field set in the data model goes unprinted):
//
//   type        := DTYPE 'global' '[' slots ']' 'strides' '[' slots ']'
//                | DTYPE ('shared' | 'register') '[' INT* ']' '@' (LAYOUT | '?')
//                  ['swizzle' SWIZZLE]
//
// LAYOUT is the notation of layout/layout.h (`S[(8,4):(4@lane,1@reg)] + R[4:1@warp]`), `?` a
// register layout left to inference; SWIZZLE that of layout/swizzle.h (`Sw<3,4,3>`, `128B`).
//
// Expressions are written as vm::to_string(Expr) writes them: binary operations in
// parentheses (`(k0 + 32)`), `floordiv(a, b)`, `mod(a, b)`, `min(a, b)`, `max(a, b)`,
// `select(c, a, b)`, `cast<i64>(x)`, `-x`, `!p`, `~x`, `%blockIdx.x` … `%gridDim.z`, `true`,
// `false`, integers (`4`, a type other than i32 as a suffix: `4:i64`) and floats with their
// type (`0.5:f32`, `inf:f32`, `-nan:f64`). `-3` is a constant, `-(3)` the negation of one. The
// parser also accepts binary operations without parentheses, with C's precedence.
//
// Names. Parameters and variables are identifiers ([A-Za-z_][A-Za-z0-9_]*, not a reserved
// word); tensors are `%` and such an identifier. The printer writes every name as the program
// has it when it reads back unambiguously; otherwise (a duplicate, a reserved word, a character
// outside the identifier set) it writes a fresh variant (`i_1`), so that the printed text names
// each parameter, variable and tensor once.
//
// The round trip. print(parse_program(print(p))) == print(p) for every program that defines
// each tensor and variable before using it, reads only scalar parameters in expressions, and
// nests expressions and blocks at most kMaxNesting (vm/parser.h) deep; and
// parse_program(print(p)) == p when, besides, nothing had to be renamed and p is numbered as
// the parser numbers: the text carries no Var ids or TensorIds, which the parser assigns in
// order of definition (as the builders do). Also not in the text: tensors of the table that no
// statement defines, and a TensorInfo::location other than that of the defining statement.
#pragma once

#include <string>
#include <string_view>

#include "vm/program.h"

namespace nibble::vm {

// The whole program, ending with a newline.
std::string print(const Program& program);

// One statement as it appears in the program (nested bodies included, no final newline),
// with the type of every result spelled out. Names are the program's, not renamed: for
// messages that point at a statement.
std::string print(const Program& program, const Statement& statement);
// One instruction on one line, without location: "dot %acc, %a, %b".
std::string print_instruction(const Program& program, const Instruction& instruction);

// Names in the text are identifiers ([A-Za-z_][A-Za-z0-9_]*) other than the reserved words,
// which start header lines, statements and expressions (`for`, `let`, `select`, `blockIdx`, …).
bool is_identifier(std::string_view name);
bool is_reserved_word(std::string_view name);

// A STRING of the text: in double quotes, with \" \\ \n \t and \xHH for other control bytes.
std::string quoted(std::string_view text);

}  // namespace nibble::vm
