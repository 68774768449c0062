#include "dtypes/conversion_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <utility>

#include "dtypes/bit_ops.h"
#include "dtypes/codec.h"

namespace nibble::dtypes {

// --- The opcode table ----------------------------------------------------------------------------

std::string_view ptx_name(Opcode op) {
  switch (op) {
    case Opcode::Lop3:
      return "lop3.b32";
    case Opcode::Prmt:
      return "prmt.b32";
    case Opcode::Shl:
      return "shl.b32";
    case Opcode::Shr:
      return "shr.u32";
    case Opcode::ShfL:
      return "shf.l.wrap.b32";
    case Opcode::ShfR:
      return "shf.r.wrap.b32";
    case Opcode::AddU32:
      return "add.u32";
    case Opcode::AddF16x2:
      return "add.rn.f16x2";
    case Opcode::SubF16x2:
      return "sub.rn.f16x2";
    case Opcode::MulF16x2:
      return "mul.rn.f16x2";
    case Opcode::FmaF16x2:
      return "fma.rn.f16x2";
    case Opcode::FmaBf16x2:
      return "fma.rn.bf16x2";
    case Opcode::AddF32:
      return "add.rn.f32";
    case Opcode::SubF32:
      return "sub.rn.f32";
    case Opcode::MulF32:
      return "mul.rn.f32";
    case Opcode::FmaF32:
      return "fma.rn.f32";
    case Opcode::CvtBf16x2F32:
      return "cvt.rn.bf16x2.f32";
    case Opcode::CvtF16x2E4m3x2:
      return "cvt.rn.f16x2.e4m3x2";
  }
  throw std::logic_error("unknown opcode");
}

int source_count(Opcode op) {
  switch (op) {
    case Opcode::Lop3:
    case Opcode::Prmt:
    case Opcode::ShfL:
    case Opcode::ShfR:
    case Opcode::FmaF16x2:
    case Opcode::FmaBf16x2:
    case Opcode::FmaF32:
      return 3;
    case Opcode::CvtF16x2E4m3x2:
      return 1;
    default:
      return 2;
  }
}

int min_sm(Opcode op) {
  switch (op) {
    case Opcode::Lop3:
      return 50;
    case Opcode::ShfL:
    case Opcode::ShfR:
      return 32;
    case Opcode::AddF16x2:
    case Opcode::SubF16x2:
    case Opcode::MulF16x2:
    case Opcode::FmaF16x2:
      return 53;
    case Opcode::FmaBf16x2:
    case Opcode::CvtBf16x2F32:
      return 80;
    case Opcode::CvtF16x2E4m3x2:
      return 89;
    default:
      return 20;
  }
}

// --- Running a plan ------------------------------------------------------------------------------

namespace {

uint32_t execute(const PlanOp& op, const std::vector<uint32_t>& registers) {
  const auto read = [&](int i) {
    const Operand& operand = op.src[static_cast<size_t>(i)];
    return operand.is_register() ? registers.at(operand.value) : operand.value;
  };
  const uint32_t a = read(0);
  const uint32_t b = read(1);
  const uint32_t c = read(2);
  switch (op.op) {
    case Opcode::Lop3:
      return lop3(a, b, c, static_cast<uint8_t>(op.imm));
    case Opcode::Prmt:
      return prmt(a, b, c);
    case Opcode::Shl:
      return shl_b32(a, b);
    case Opcode::Shr:
      return shr_u32(a, b);
    case Opcode::ShfL:
      return shf_l_wrap(a, b, c);
    case Opcode::ShfR:
      return shf_r_wrap(a, b, c);
    case Opcode::AddU32:
      return add_u32(a, b);
    case Opcode::AddF16x2:
      return add_f16x2(a, b);
    case Opcode::SubF16x2:
      return sub_f16x2(a, b);
    case Opcode::MulF16x2:
      return mul_f16x2(a, b);
    case Opcode::FmaF16x2:
      return fma_f16x2(a, b, c);
    case Opcode::FmaBf16x2:
      return fma_bf16x2(a, b, c);
    case Opcode::AddF32:
      return add_f32(a, b);
    case Opcode::SubF32:
      return sub_f32(a, b);
    case Opcode::MulF32:
      return mul_f32(a, b);
    case Opcode::FmaF32:
      return fma_f32(a, b, c);
    case Opcode::CvtBf16x2F32:
      return cvt_rn_bf16x2_f32(a, b);
    case Opcode::CvtF16x2E4m3x2:
      return cvt_rn_f16x2_e4m3x2(static_cast<uint16_t>(op.imm == 0 ? a : a >> 16));
  }
  throw std::logic_error("unknown opcode");
}

}  // namespace

std::vector<uint32_t> run_plan(const ConversionPlan& plan, std::span<const uint32_t> input_words) {
  if (input_words.size() != static_cast<size_t>(plan.input_words)) {
    throw std::invalid_argument(fmt::format("plan {} -> {} reads {} input words, got {}",
                                            plan.source.name(), plan.target.name(),
                                            plan.input_words, input_words.size()));
  }
  std::vector<uint32_t> registers(static_cast<size_t>(plan.register_count), 0);
  std::copy(input_words.begin(), input_words.end(), registers.begin());
  for (const PlanOp& op : plan.ops)
    registers.at(static_cast<size_t>(op.dst)) = execute(op, registers);
  std::vector<uint32_t> outputs;
  outputs.reserve(plan.output_registers.size());
  for (int reg : plan.output_registers)
    outputs.push_back(registers.at(static_cast<size_t>(reg)));
  return outputs;
}

// --- Printing ------------------------------------------------------------------------------------

namespace {

bool takes_f32_immediates(Opcode op) {
  return op == Opcode::AddF32 || op == Opcode::SubF32 || op == Opcode::MulF32 ||
         op == Opcode::FmaF32 || op == Opcode::CvtBf16x2F32;
}

std::string operand_text(const PlanOp& op, const Operand& operand) {
  if (operand.is_register()) return fmt::format("%r{}", operand.value);
  if (takes_f32_immediates(op.op)) return fmt::format("0f{:08X}", operand.value);
  return fmt::format("0x{:08x}", operand.value);
}

}  // namespace

std::string to_string(const ConversionPlan& plan) {
  std::string text =
      fmt::format("// {} -> {}: {}\n", plan.source.name(), plan.target.name(), plan.description);
  text += fmt::format("// {} input word{} ({} elements) -> {} output words, {} ops, sm_{}+\n",
                      plan.input_words, plan.input_words == 1 ? "" : "s", plan.element_count(),
                      plan.output_words, plan.ops.size(), plan.min_sm);
  text += "// inputs:";
  for (int word = 0; word < plan.input_words; ++word)
    text += fmt::format(" %r{}", word);
  text += "\n// outputs {lo, hi} = source elements:";
  for (int word = 0; word < plan.output_words; ++word) {
    const auto slot = static_cast<size_t>(2 * word);
    text += fmt::format(" %r{} = {{{}, {}}}", plan.output_registers[static_cast<size_t>(word)],
                        plan.output_element[slot], plan.output_element[slot + 1]);
  }
  text += "\n";
  for (const PlanOp& op : plan.ops) {
    text += fmt::format("{} %r{}", ptx_name(op.op), op.dst);
    for (int i = 0; i < source_count(op.op); ++i) {
      const Operand& source = op.src[static_cast<size_t>(i)];
      text += ", " + operand_text(op, source);
      if (op.op == Opcode::CvtF16x2E4m3x2) text += op.imm == 0 ? ".lo" : ".hi";
    }
    if (op.op == Opcode::Lop3) text += fmt::format(", 0x{:02x}", op.imm);
    text += ";\n";
  }
  return text;
}

// --- Building plans ------------------------------------------------------------------------------

namespace {

constexpr uint8_t kAnd = lop3_lut(kLopA & kLopB);                     // a & b
constexpr uint8_t kXor = lop3_lut(kLopA ^ kLopB);                     // a ^ b
constexpr uint8_t kAndThenOr = lop3_lut((kLopA & kLopB) | kLopC);     // (a & b) | c
constexpr uint8_t kAndThenXor = lop3_lut((kLopA & kLopB) ^ kLopC);    // (a & b) ^ c
constexpr uint8_t kOrMasked = lop3_lut(kLopA | (kLopB & kLopC));      // a | (b & c)
constexpr uint8_t kClearMasked = lop3_lut(kLopA & ~(kLopB & kLopC));  // a & ~(b & c)

// prmt selector: result byte i gets the sign (bit 7) of source byte 1 for i = 0, 1 and of source
// byte 3 for i = 2, 3, turning bit 15 / bit 31 into an all-ones or all-zeros half.
constexpr uint32_t kSpreadHalfSignBits = 0xBB99;
// prmt selector: bytes 0, 1 from a and bytes 2, 3 from b.
constexpr uint32_t kLowHalfOfAHighHalfOfB = 0x7610;

uint32_t both_halves(uint32_t half) {
  return half | (half << 16);
}
uint32_t halves(uint32_t lo, uint32_t hi) {
  return lo | (hi << 16);
}

// The target encoding of a constant that must be exact (a plan constant that rounded would make
// the plan wrong, so this is a programming error, not an input error).
uint32_t exact_constant(DataType type, double value) {
  const auto bits = static_cast<uint32_t>(encode(type, value));
  if (decode(type, bits) != value) {
    throw std::logic_error(fmt::format("{} is not exact in {}", value, type.name()));
  }
  return bits;
}

class PlanBuilder {
 public:
  PlanBuilder(DataType source, DataType target, int input_words)
      : source_(source), target_(target), input_words_(input_words), register_count_(input_words) {}

  Operand input(int word) const { return Operand::reg(word); }

  Operand emit(Opcode op, Operand a, Operand b = {}, Operand c = {}, uint32_t imm = 0) {
    const int dst = register_count_++;
    ops_.push_back({op, dst, {a, b, c}, imm});
    return Operand::reg(dst);
  }
  Operand lop3(Operand a, Operand b, Operand c, uint8_t lut) {
    return emit(Opcode::Lop3, a, b, c, lut);
  }
  Operand prmt(Operand a, Operand b, uint32_t selector) {
    return emit(Opcode::Prmt, a, b, Operand::imm(selector));
  }
  Operand shl(Operand a, int amount) {
    return amount == 0 ? a : emit(Opcode::Shl, a, Operand::imm(static_cast<uint32_t>(amount)));
  }

  // Bits [start, start + 32) of the input bit stream, zeros outside it: an input word itself when
  // start is a multiple of 32, otherwise one shift, made once and reused.
  Operand window(int start) {
    if (auto found = windows_.find(start); found != windows_.end()) return found->second;
    Operand result;
    if (start < 0) {
      result = shl(input(0), -start);
    } else {
      const int word = start / 32;
      const auto shift = Operand::imm(static_cast<uint32_t>(start % 32));
      if (start % 32 == 0) {
        result = input(word);
      } else if (word + 1 < input_words_) {
        result = emit(Opcode::ShfR, input(word), input(word + 1), shift);
      } else {
        result = emit(Opcode::Shr, input(word), shift);
      }
    }
    windows_.emplace(start, result);
    return result;
  }
  // Ops that window(start) would add: 0 or 1.
  int window_cost(int start) const {
    if (windows_.contains(start) || (start >= 0 && start % 32 == 0)) return 0;
    return 1;
  }

  void output(Operand word, int lo_element, int hi_element) {
    output_registers_.push_back(static_cast<int>(word.value));
    output_element_.push_back(lo_element);
    output_element_.push_back(hi_element);
  }

  ConversionPlan finish(std::string description) && {
    int sm = 20;
    for (const PlanOp& op : ops_)
      sm = std::max(sm, min_sm(op.op));
    return ConversionPlan{source_,
                          target_,
                          input_words_,
                          static_cast<int>(output_registers_.size()),
                          register_count_,
                          std::move(ops_),
                          std::move(output_registers_),
                          std::move(output_element_),
                          std::move(description),
                          sm};
  }

 private:
  DataType source_;
  DataType target_;
  int input_words_;
  int register_count_;
  std::vector<PlanOp> ops_;
  std::map<int, Operand> windows_;
  std::vector<int> output_registers_;
  std::vector<int> output_element_;
};

// Words a plan reads for b-bit elements: one when b divides 32, else b (32 elements).
int words_for(int bits) {
  return 32 % bits == 0 ? 1 : bits;
}

// --- Integers: the magic-exponent trick ----------------------------------------------------------
//
// A "carrier" register holds stream bits [low_start, low_start + 16) in its lo half and
// [high_start, high_start + 16) in its hi half: a window (high_start = low_start + 16), or two
// windows merged by one prmt. Every element whose field lies at an offset 0..max_offset of a half
// can be converted from it, two at a time (one per half) with one lop3 and one fma. The carriers
// are chosen greedily by ops per converted pair.

struct Carrier {
  int low_start;
  int high_start;
  bool merged;
  std::vector<int> low;   // elements convertible from the lo half
  std::vector<int> high;  // elements convertible from the hi half
  int overhead;           // ops to build the carrier
  int pairs() const { return static_cast<int>(std::min(low.size(), high.size())); }
  // Whether this converts more pairs per op than `other` (ties: more pairs, fewer ops).
  bool better_than(const Carrier& other) const {
    const int ops = overhead + 2 * pairs();
    const int other_ops = other.overhead + 2 * other.pairs();
    if (pairs() * other_ops != other.pairs() * ops)
      return pairs() * other_ops > other.pairs() * ops;
    if (pairs() != other.pairs()) return pairs() > other.pairs();
    return overhead < other.overhead;
  }
};

ConversionPlan integer_magic_plan(DataType source, DataType target) {
  const int bits = source.bits();
  const bool to_f16 = target == DataType::f16();
  const int mantissa_bits = target.mantissa_bits();
  const double magic = std::ldexp(1.0, mantissa_bits);  // 2^m: the ulp is 1 in [2^m, 2^(m+1))
  const int max_offset = mantissa_bits - bits;          // x * 2^offset < 2^m
  const int words = words_for(bits);
  const int elements = 32 * words / bits;
  const bool is_signed = source.is_signed();
  const double sign_bias = is_signed ? std::ldexp(1.0, bits - 1) : 0.0;  // xor sign bit adds it
  const uint32_t field = (uint32_t{1} << bits) - 1;

  PlanBuilder plan(source, target, words);
  std::vector<bool> converted(static_cast<size_t>(elements), false);
  const auto fields_at = [&](int half_start) {
    std::vector<int> found;
    for (int element = 0; element < elements; ++element) {
      const int offset = element * bits - half_start;
      if (!converted[static_cast<size_t>(element)] && offset >= 0 && offset <= max_offset) {
        found.push_back(element);
      }
    }
    return found;
  };

  int remaining = elements;
  while (remaining > 0) {
    // The best single window, and the window with the most fields in its lo half.
    std::optional<Carrier> best;
    int richest_low_start = 0;
    size_t richest_low = 0;
    for (int start = -16; start < 32 * words; ++start) {
      Carrier window{start,
                     start + 16,
                     false,
                     fields_at(start),
                     fields_at(start + 16),
                     plan.window_cost(start)};
      if (window.pairs() > 0 && (!best || window.better_than(*best))) best = window;
      if (window.low.size() > richest_low ||
          (window.low.size() == richest_low &&
           window.overhead < plan.window_cost(richest_low_start))) {
        richest_low = window.low.size();
        richest_low_start = start;
      }
    }
    // A merged carrier: that lo half, and the hi half of the window richest in other fields.
    const std::vector<int> merged_low = fields_at(richest_low_start);
    std::optional<Carrier> merged;
    for (int start = -16; start < 32 * words; ++start) {
      if (start == richest_low_start) continue;
      std::vector<int> high = fields_at(start + 16);
      std::erase_if(high, [&](int element) {
        return std::find(merged_low.begin(), merged_low.end(), element) != merged_low.end();
      });
      Carrier candidate{richest_low_start,
                        start + 16,
                        true,
                        merged_low,
                        std::move(high),
                        plan.window_cost(richest_low_start) + plan.window_cost(start) + 1};
      if (candidate.pairs() > 0 && (!merged || candidate.better_than(*merged))) merged = candidate;
    }
    if (merged && (!best || merged->better_than(*best))) best = merged;
    if (!best) throw std::logic_error("integer plan: no carrier converts the remaining elements");

    const Operand carrier =
        best->merged ? plan.prmt(plan.window(best->low_start), plan.window(best->high_start - 16),
                                 kLowHalfOfAHighHalfOfB)
                     : plan.window(best->low_start);
    for (int pair = 0; pair < best->pairs(); ++pair) {
      const int lo_element = best->low[static_cast<size_t>(pair)];
      const int hi_element = best->high[static_cast<size_t>(pair)];
      const int lo_offset = lo_element * bits - best->low_start;
      const int hi_offset = hi_element * bits - best->high_start;
      // Under the exponent of 2^(m - offset) a field at that offset has ulp weight 1: h =
      // 2^(m - offset) + x + sign_bias in each half, and x = h - (2^(m - offset) + sign_bias),
      // exact. Every fix-up is then a subtraction of a constant (for f16), at any offset.
      const auto exponent = [&](int offset) {
        return exact_constant(target, std::ldexp(magic, -offset));
      };
      const uint32_t mask = halves(field << lo_offset, field << hi_offset);
      uint32_t constant = halves(exponent(lo_offset), exponent(hi_offset));
      if (is_signed) {
        constant |=
            halves(uint32_t{1} << (lo_offset + bits - 1), uint32_t{1} << (hi_offset + bits - 1));
      }
      const Operand h = plan.lop3(carrier, Operand::imm(mask), Operand::imm(constant),
                                  is_signed ? kAndThenXor : kAndThenOr);
      const auto bias = [&](int offset) { return std::ldexp(magic, -offset) + sign_bias; };
      Operand value;
      if (to_f16) {
        value = plan.emit(Opcode::SubF16x2, h,
                          Operand::imm(halves(exact_constant(target, bias(lo_offset)),
                                              exact_constant(target, bias(hi_offset)))));
      } else {
        // sub.bf16x2 needs sm_90: fma with a scale of one.
        value =
            plan.emit(Opcode::FmaBf16x2, h, Operand::imm(both_halves(exact_constant(target, 1.0))),
                      Operand::imm(halves(exact_constant(target, -bias(lo_offset)),
                                          exact_constant(target, -bias(hi_offset)))));
      }
      plan.output(value, lo_element, hi_element);
      converted[static_cast<size_t>(lo_element)] = true;
      converted[static_cast<size_t>(hi_element)] = true;
      remaining -= 2;
    }
  }
  const std::string technique = fmt::format(
      "{}magic exponent 2^({} - offset) by lop3, then one {} per word",
      is_signed ? "sign bit xor and " : "", mantissa_bits, to_f16 ? "sub.f16x2" : "fma.bf16x2");
  return std::move(plan).finish(technique);
}

// 8-bit integers to f16: prmt places each byte under the magic exponent byte 0x64.
ConversionPlan byte_to_f16_plan(DataType source) {
  const DataType f16 = DataType::f16();
  PlanBuilder plan(source, f16, 1);
  const bool is_signed = source.is_signed();
  const Operand bytes = is_signed ? plan.lop3(plan.input(0), Operand::imm(0x80808080),
                                              Operand::imm(0), kXor)  // offset binary
                                  : plan.input(0);
  const double bias = 1024.0 + (is_signed ? 128.0 : 0.0);
  for (int word = 0; word < 2; ++word) {
    // Result bytes: {byte 2w, 0x64, byte 2w + 1, 0x64}; 0x64 is byte 4 of the pool.
    const auto low = static_cast<uint32_t>(2 * word);
    const uint32_t selector = 0x4040 | low | ((low + 1) << 8);
    const Operand h = plan.prmt(bytes, Operand::imm(0x64646464), selector);
    const Operand value =
        plan.emit(Opcode::SubF16x2, h, Operand::imm(both_halves(exact_constant(f16, bias))));
    plan.output(value, 2 * word, 2 * word + 1);
  }
  return std::move(plan).finish(is_signed ? "xor 0x80 per byte, prmt under 0x64 (1024), sub 1152"
                                          : "prmt under 0x64 (1024), sub 1024");
}

// 8-bit integers to bf16 through f32: 0x4B0000xx is 2^23 + x, and an integer of at most 8
// significant bits is exactly the high half of its f32 encoding.
ConversionPlan byte_to_bf16_plan(DataType source) {
  PlanBuilder plan(source, DataType::bf16(), 1);
  const bool is_signed = source.is_signed();
  const Operand bytes =
      is_signed ? plan.lop3(plan.input(0), Operand::imm(0x80808080), Operand::imm(0), kXor)
                : plan.input(0);
  const double bias = 8388608.0 + (is_signed ? 128.0 : 0.0);
  const uint32_t bias_f32 = exact_constant(DataType::f32(), bias);
  std::array<Operand, 4> values;
  for (uint32_t byte = 0; byte < 4; ++byte) {
    // Result bytes: {byte k, 0x00, 0x00, 0x4B} from the pool {bytes, 0x4B000000}.
    const Operand f = plan.prmt(bytes, Operand::imm(0x4B000000), 0x7540 | byte);
    values[byte] = plan.emit(Opcode::SubF32, f, Operand::imm(bias_f32));
  }
  for (int word = 0; word < 2; ++word) {
    const Operand packed = plan.prmt(values[static_cast<size_t>(2 * word)],
                                     values[static_cast<size_t>(2 * word + 1)], 0x7632);
    plan.output(packed, 2 * word, 2 * word + 1);
  }
  return std::move(plan).finish(
      fmt::format("{}prmt into f32 0x4B0000xx, sub.f32 {}, prmt the high halves together",
                  is_signed ? "xor 0x80 per byte, " : "", bias));
}

// --- Small floats --------------------------------------------------------------------------------
//
// Every element is first found at the top of a byte (sign in bit 7) of some window; one prmt then
// builds a pair of sign-extended bytes ({replicated sign, byte} per half), a shift and a mask put
// exponent|mantissa under the target's exponent field with the sign in bit 15, special codes are
// patched, and one multiply by 2^(target bias - source bias) finishes.

struct ByteLane {
  int window_start;
  int byte;  // 0..3
};

std::vector<ByteLane> find_byte_lanes(const PlanBuilder& plan, int bits, int elements) {
  std::vector<std::optional<ByteLane>> lanes(static_cast<size_t>(elements));
  const auto covered_by = [&](int start) {
    std::vector<std::pair<int, int>> found;  // (element, byte)
    for (int element = 0; element < elements; ++element) {
      const int offset = element * bits - start - (8 - bits);  // must be a byte start
      if (!lanes[static_cast<size_t>(element)] && offset >= 0 && offset < 32 && offset % 8 == 0) {
        found.emplace_back(element, offset / 8);
      }
    }
    return found;
  };
  for (int element = 0; element < elements; ++element) {
    if (lanes[static_cast<size_t>(element)]) continue;
    // The window covering the most unplaced elements among those that hold this one.
    int best_start = 0;
    std::vector<std::pair<int, int>> best;
    for (int byte = 0; byte < 4; ++byte) {
      const int start = element * bits - 8 * byte - (8 - bits);
      if (start <= -32) continue;
      auto found = covered_by(start);
      if (best.empty() || found.size() > best.size() ||
          (found.size() == best.size() && plan.window_cost(start) < plan.window_cost(best_start))) {
        best = std::move(found);
        best_start = start;
      }
    }
    for (auto [covered, byte] : best)
      lanes[static_cast<size_t>(covered)] = ByteLane{best_start, byte};
  }
  std::vector<ByteLane> result;
  for (const auto& lane : lanes)
    result.push_back(*lane);
  return result;
}

ConversionPlan small_float_plan(DataType source, DataType target) {
  const int bits = source.bits();
  const int exponent_bits = source.exponent_bits();
  const int mantissa_bits = source.mantissa_bits();
  const int target_exponent_bits = target.exponent_bits();
  const int target_mantissa_bits = target.mantissa_bits();
  const bool to_f16 = target == DataType::f16();
  const int words = words_for(bits);
  const int elements = 32 * words / bits;
  const int scale_exponent = target.exponent_bias() - source.exponent_bias();

  PlanBuilder plan(source, target, words);
  const std::vector<ByteLane> lanes = find_byte_lanes(plan, bits, elements);

  // Exponent|mantissa must occupy bits [em_low, em_high) of each half.
  const int em_low = target_mantissa_bits - mantissa_bits;
  const int em_high = target_mantissa_bits + exponent_bits;
  const uint32_t em_field = ((uint32_t{1} << (exponent_bits + mantissa_bits)) - 1) << em_low;
  const uint32_t target_exponent_field = ((uint32_t{1} << target_exponent_bits) - 1)
                                         << target_mantissa_bits;

  std::vector<std::string> steps;  // for the description, each once
  const auto note = [&steps](std::string step) {
    if (std::find(steps.begin(), steps.end(), step) == steps.end())
      steps.push_back(std::move(step));
  };
  for (int word = 0; word < elements / 2; ++word) {
    const ByteLane lo = lanes[static_cast<size_t>(2 * word)];
    const ByteLane hi = lanes[static_cast<size_t>(2 * word + 1)];
    const Operand lo_window = plan.window(lo.window_start);
    const Operand hi_window = plan.window(hi.window_start);
    const bool one_window = lo.window_start == hi.window_start;
    const auto lo_byte = static_cast<uint32_t>(lo.byte);
    const auto hi_byte = static_cast<uint32_t>(hi.byte + (one_window ? 0 : 4));

    Operand x;
    if (to_f16 && exponent_bits == 5 && one_window) {
      // The byte already is sign|exponent|mantissa of f16 when placed in the high byte of a half
      // over a zero low byte (byte 4 of the pool, the immediate 0).
      x = plan.prmt(lo_window, Operand::imm(0), 0x0404 | (lo_byte << 4) | (hi_byte << 12));
      if (bits < 8) {
        x = plan.lop3(x, Operand::imm(both_halves(0x8000 | em_field)), Operand::imm(0), kAnd);
      }
      note("prmt each byte over a zero byte");
    } else {
      // {sign replicated, byte} per half, then exponent|mantissa under the target exponent.
      const uint32_t selector =
          lo_byte | ((8 | lo_byte) << 4) | (hi_byte << 8) | ((8 | hi_byte) << 12);
      const Operand extended = plan.prmt(lo_window, hi_window, selector);
      const int shift = em_high - 7;
      const Operand placed = plan.shl(extended, shift);
      x = plan.lop3(placed, Operand::imm(both_halves(0x8000 | em_field)), Operand::imm(0), kAnd);
      note(fmt::format("prmt sign-extends each byte, shl {}, mask 0x{:04x}", shift,
                       0x8000 | em_field));
    }

    if (source.has_nan() || source.has_inf()) {
      // Special codes: exponent all ones (inf/NaN, IEEE-like) or exponent|mantissa all ones (the
      // E4M3 NaN). Adding one at the lowest bit of that run carries into bit em_high, which is
      // free; the target exponent bits above the source's are then set for those halves.
      const int run_low = source.has_inf() ? target_mantissa_bits : em_low;
      const uint32_t missing_exponent_bits = target_exponent_field & ~em_field & 0x7FFF;
      if (missing_exponent_bits != 0) {
        const Operand carried =
            plan.emit(Opcode::AddU32, x, Operand::imm(both_halves(uint32_t{1} << run_low)));
        if (missing_exponent_bits == uint32_t{1} << em_high) {
          x = plan.lop3(x, carried, Operand::imm(both_halves(missing_exponent_bits)), kOrMasked);
        } else {
          const Operand at_sign = plan.shl(carried, 15 - em_high);
          const Operand special = plan.prmt(at_sign, at_sign, kSpreadHalfSignBits);
          x = plan.lop3(x, special, Operand::imm(both_halves(missing_exponent_bits)), kOrMasked);
        }
        note("special codes get an all-ones exponent");
      }
    } else if (exponent_bits == target_exponent_bits) {
      // Finite-only with as many exponent bits as f16: exponent 31 is beyond f16's range, and
      // encode() rounds it to infinity; clear the mantissa there.
      const Operand exponent =
          plan.lop3(x, Operand::imm(both_halves(target_exponent_field)), Operand::imm(0), kAnd);
      const Operand carried = plan.emit(Opcode::AddU32, exponent,
                                        Operand::imm(both_halves(1u << target_mantissa_bits)));
      const Operand overflow = plan.prmt(carried, carried, kSpreadHalfSignBits);
      const uint32_t mantissa_field = (uint32_t{1} << target_mantissa_bits) - 1;
      x = plan.lop3(x, overflow, Operand::imm(both_halves(mantissa_field)), kClearMasked);
      note("exponent 31 becomes infinity");
    }

    Operand value = x;
    if (scale_exponent != 0) {
      const uint32_t scale = both_halves(exact_constant(target, std::ldexp(1.0, scale_exponent)));
      value = to_f16 ? plan.emit(Opcode::MulF16x2, x, Operand::imm(scale))
                     : plan.emit(Opcode::FmaBf16x2, x, Operand::imm(scale),
                                 Operand::imm(both_halves(0x8000)));  // + (-0) keeps -0
      note(fmt::format("{} 2^{}", to_f16 ? "mul.f16x2 by" : "fma.bf16x2 by", scale_exponent));
    }
    plan.output(value, 2 * word, 2 * word + 1);
  }
  std::string description;
  for (const std::string& step : steps)
    description += (description.empty() ? "" : "; ") + step;
  return std::move(plan).finish(description);
}

// E4M3 to f16 with the sm_89 hardware conversion, two elements per instruction.
ConversionPlan e4m3_hardware_plan(DataType source) {
  PlanBuilder plan(source, DataType::f16(), 1);
  for (uint32_t half = 0; half < 2; ++half) {
    const Operand value =
        plan.emit(Opcode::CvtF16x2E4m3x2, plan.input(0), Operand{}, Operand{}, half);
    plan.output(value, static_cast<int>(2 * half), static_cast<int>(2 * half + 1));
  }
  return std::move(plan).finish("cvt.rn.f16x2.e4m3x2 on each 16-bit half");
}

std::optional<ConversionPlan> build_plan(DataType source, DataType target, int sm) {
  if (target != DataType::f16() && target != DataType::bf16()) return std::nullopt;
  const bool to_f16 = target == DataType::f16();
  if (source.is_integer()) {
    if (source.bits() > 8) return std::nullopt;
    if (source.bits() == 8) return to_f16 ? byte_to_f16_plan(source) : byte_to_bf16_plan(source);
    return integer_magic_plan(source, target);
  }
  if (source.bits() > 8) return std::nullopt;
  if (to_f16 && source.exponent_bits() > 5) return std::nullopt;  // beyond f16's range
  if (to_f16 && source == DataType::floating(4, 3) && sm >= 89) return e4m3_hardware_plan(source);
  return small_float_plan(source, target);
}

}  // namespace

std::optional<ConversionPlan> find_conversion_plan(DataType source, DataType target, int sm) {
  std::optional<ConversionPlan> plan = build_plan(source, target, sm);
  if (plan && plan->min_sm > sm) return std::nullopt;
  return plan;
}

}  // namespace nibble::dtypes
