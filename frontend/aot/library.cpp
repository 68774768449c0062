#include "frontend/aot/library.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <numeric>
#include <set>

#include "frontend/aot/c_expr.h"
#include "frontend/aot/manifest.h"

namespace nibble::aot {

namespace {

using dtypes::DataType;

// Text with @NAME@ placeholders: the C fragments below are mostly braces, which fmt would need
// doubled.
std::string fill(std::string text, const std::map<std::string, std::string>& values) {
  for (const auto& [key, value] : values) {
    const std::string marker = "@" + key + "@";
    for (size_t at = text.find(marker); at != std::string::npos; at = text.find(marker, at)) {
      text.replace(at, marker.size(), value);
      at += value.size();
    }
  }
  return text;
}

std::string c_string(std::string_view text) {
  std::string quoted = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += c;
    } else if (c == '\n') {
      quoted += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      quoted += fmt::format("\\{:03o}", static_cast<unsigned char>(c));
    } else {
      quoted += c;
    }
  }
  return quoted + "\"";
}

// A comment must not end early: "*/" inside a description (a config's text) is broken up.
std::string comment_safe(std::string text) {
  for (size_t at = text.find("*/"); at != std::string::npos; at = text.find("*/", at)) {
    text.replace(at, 2, "* /");
  }
  return text;
}

std::string dtype_macro(const DataType& dtype) {
  std::string name = dtype.name();
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return "NBL_DTYPE_" + name;
}

// The C type of a scalar argument, or "" when the C interface has none for it.
std::string c_scalar_type(const DataType& dtype) {
  if (dtype.is_float()) {
    if (dtype == DataType::f32()) return "float";
    if (dtype == DataType::f64()) return "double";
    return "";
  }
  if (dtype.bits() != 8 && dtype.bits() != 16 && dtype.bits() != 32 && dtype.bits() != 64) {
    return "";
  }
  return fmt::format("{}int{}_t", dtype.is_signed() ? "" : "u", dtype.bits());
}

// One argument of a launch function.
struct Argument {
  enum class Kind { Pointer, Scalar, Constant, DType };
  Kind kind = Kind::Scalar;
  std::string name;    // in C
  int param = -1;      // Program::params index
  std::string c_type;  // nbl_devptr, int32_t, nbl_dtype…
  std::string doc;     // for the header's comment
  std::string of;      // DType: the pointer it describes
};

struct Signature {
  std::vector<Argument> arguments;
  std::vector<std::string> fixed;  // "group = 128": compile-time values every variant shares
  // Kernel parameters (codegen's order) as argument indices.
  std::vector<size_t> kernel_arguments;
};

[[noreturn]] void fail(const Function& function, const std::string& message) {
  throw GenerateError(fmt::format("{}: {}", function.where, message));
}

Signature signature_of(const Function& function) {
  const vm::Program& first = function.variants.front().kernel.program;
  for (const Variant& variant : function.variants) {
    const vm::Program& program = variant.kernel.program;
    if (program.params.size() != first.params.size()) {
      fail(function, fmt::format("the variants must share one parameter list: {} has {} "
                                 "parameters, {} has {}",
                                 function.variants.front().description, first.params.size(),
                                 variant.description, program.params.size()));
    }
    for (size_t i = 0; i < first.params.size(); ++i) {
      const vm::Parameter& a = first.params[i];
      const vm::Parameter& b = program.params[i];
      const bool same_scalar_type = a.kind == vm::Parameter::Kind::Pointer || a.dtype == b.dtype;
      if (a.name != b.name || a.kind != b.kind || a.compile_time != b.compile_time ||
          !same_scalar_type) {
        fail(function, fmt::format("the variants must share one parameter list: parameter {} is "
                                   "'{}' ({}) in {} and '{}' ({}) in {}",
                                   i, a.name, a.dtype.name(), function.variants.front().description,
                                   b.name, b.dtype.name(), variant.description));
      }
    }
  }

  Signature signature;
  std::set<std::string> taken = {"stream", "plan"};
  // The launch functions' own names (stream, plan, nbl_*) are never taken by an argument.
  const auto c_name = [&](std::string name) {
    if (!is_c_identifier(name) || name.starts_with("nbl_")) name += "_";
    while (!taken.insert(name).second)
      name += "_";
    return name;
  };
  std::vector<std::pair<int, std::string>> varying_pointers;  // param, C name of the pointer
  std::map<int, size_t> argument_of_param;
  for (size_t i = 0; i < first.params.size(); ++i) {
    const vm::Parameter& param = first.params[i];
    Argument argument;
    argument.param = static_cast<int>(i);
    if (param.kind == vm::Parameter::Kind::Pointer) {
      argument.kind = Argument::Kind::Pointer;
      argument.c_type = "nbl_devptr";
      std::set<std::string> dtypes;
      for (const Variant& variant : function.variants) {
        dtypes.insert(variant.kernel.program.params[i].dtype.name());
      }
      argument.doc = fmt::format("device pointer to {}", fmt::join(dtypes, " or "));
      argument.name = c_name(param.name);
      if (dtypes.size() > 1) varying_pointers.emplace_back(argument.param, argument.name);
    } else {
      argument.c_type = c_scalar_type(param.dtype);
      if (argument.c_type.empty()) {
        fail(function, fmt::format("scalar parameter '{}' has type {}, which has no C type here "
                                   "(integers of 8, 16, 32, 64 bits, f32, f64)",
                                   param.name, param.dtype.name()));
      }
      if (param.compile_time) {
        std::set<int64_t> values;
        for (const Variant& variant : function.variants) {
          const auto& value = variant.kernel.program.params[i].value;
          if (!value)
            fail(function, fmt::format("compile-time parameter '{}' has no value in {}", param.name,
                                       variant.description));
          values.insert(*value);
        }
        if (values.size() == 1) {
          signature.fixed.push_back(fmt::format("{} = {}", param.name, *values.begin()));
          continue;
        }
        argument.kind = Argument::Kind::Constant;
        argument.doc = fmt::format("{}, one of {}", param.dtype.name(), fmt::join(values, ", "));
      } else {
        argument.kind = Argument::Kind::Scalar;
        argument.doc = param.dtype.name();
      }
      argument.name = c_name(param.name);
    }
    argument_of_param[argument.param] = signature.arguments.size();
    signature.arguments.push_back(argument);
  }
  for (const auto& [param, pointer] : varying_pointers) {
    Argument argument;
    argument.kind = Argument::Kind::DType;
    argument.param = param;
    argument.c_type = "nbl_dtype";
    argument.name = c_name(pointer + "_dtype");
    argument.of = pointer;
    argument.doc = fmt::format("element type of {} (NBL_DTYPE_…)", pointer);
    signature.arguments.push_back(argument);
  }

  // Kernel arguments: the same order and sizes in every variant, each a C argument of that size.
  const std::vector<codegen::KernelParameter>& abi = function.variants.front().kernel.parameters;
  for (const Variant& variant : function.variants) {
    const std::vector<codegen::KernelParameter>& other = variant.kernel.parameters;
    const bool same = other.size() == abi.size() &&
                      std::equal(abi.begin(), abi.end(), other.begin(), [](auto& x, auto& y) {
                        return x.program_index == y.program_index && x.kind == y.kind &&
                               x.size_bytes == y.size_bytes;
                      });
    if (!same) {
      fail(function, fmt::format("{} and {} pass their kernel arguments differently",
                                 function.variants.front().description, variant.description));
    }
  }
  for (const codegen::KernelParameter& parameter : abi) {
    const auto found = argument_of_param.find(parameter.program_index);
    if (found == argument_of_param.end()) {
      fail(function, fmt::format("kernel parameter '{}' is not an argument", parameter.name));
    }
    const Argument& argument = signature.arguments[found->second];
    const int64_t size = argument.kind == Argument::Kind::Pointer
                             ? 8
                             : first.params[static_cast<size_t>(argument.param)].dtype.bits() / 8;
    if (size != parameter.size_bytes) {
      fail(function, fmt::format("kernel parameter '{}' takes {} bytes, its C argument {}",
                                 parameter.name, parameter.size_bytes, size));
    }
    signature.kernel_arguments.push_back(found->second);
  }
  return signature;
}

std::string parameter_list(const Signature& signature) {
  std::vector<std::string> parts;
  for (const Argument& argument : signature.arguments) {
    parts.push_back(fmt::format("{} {}", argument.c_type, argument.name));
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

// What the dispatcher tries first: the newest target, architecture-specific before portable,
// cubins before PTX, then manifest order.
std::vector<size_t> preference_order(const Function& function) {
  std::vector<size_t> order(function.variants.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    const Variant& a = function.variants[x];
    const Variant& b = function.variants[y];
    if (a.kernel.target.sm != b.kernel.target.sm) return a.kernel.target.sm > b.kernel.target.sm;
    if (a.kernel.target.arch_specific != b.kernel.target.arch_specific) {
      return a.kernel.target.arch_specific;
    }
    return !a.embed_ptx && b.embed_ptx;
  });
  return order;
}

// The run-time conditions a variant needs, in words, for the header.
std::string conditions(const Variant& variant, const Signature& signature) {
  const vm::Program& program = variant.kernel.program;
  std::vector<std::string> parts;
  const codegen::Target& target = variant.kernel.target;
  if (variant.embed_ptx) {
    parts.push_back(fmt::format("compute capability >= {}.{} (PTX, JIT-compiled)", target.sm / 10,
                                target.sm % 10));
  } else if (target.arch_specific) {
    parts.push_back(
        fmt::format("compute capability {}.{} exactly", target.sm / 10, target.sm % 10));
  } else if (target.sm % 10 == 9) {
    parts.push_back(fmt::format("compute capability {}.9", target.sm / 10));
  } else {
    parts.push_back(fmt::format("compute capability {}.{} to {}.9", target.sm / 10, target.sm % 10,
                                target.sm / 10));
  }
  for (const Argument& argument : signature.arguments) {
    const vm::Parameter& param = program.params[static_cast<size_t>(argument.param)];
    switch (argument.kind) {
      case Argument::Kind::DType:
        parts.push_back(fmt::format("{} == {}", argument.name, dtype_macro(param.dtype)));
        break;
      case Argument::Kind::Constant:
        parts.push_back(fmt::format("{} == {}", argument.name, *param.value));
        break;
      case Argument::Kind::Pointer:
        if (param.alignment_bytes > 1) {
          parts.push_back(fmt::format("{} % {} == 0", argument.name, param.alignment_bytes));
        }
        break;
      case Argument::Kind::Scalar:
        if (param.divisor > 1) {
          parts.push_back(fmt::format("{} % {} == 0", argument.name, param.divisor));
        }
        break;
    }
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

const char* const kHeaderCommon = R"C(#ifndef NBL_COMMON_V2
#define NBL_COMMON_V2
/* Shared by every library nibble generates (this version): the first one included defines it. */

/* What a call returns. @LIB@_explain() gives the meaning of a code; @LIB@_last_error() the details
 * of the last failure on the calling thread (which argument, which variants were tried). When
 * no variant fits, codes 4 to 8 give the reason of the variant that came closest: they are in
 * the order of the checks. */
typedef enum nbl_status {
  NBL_SUCCESS = 0,
  NBL_ERROR_DRIVER_UNAVAILABLE = 1,  /* libcuda.so.1 cannot be loaded, or cuInit failed */
  NBL_ERROR_NO_CONTEXT = 2,          /* no CUDA context is current on the calling thread */
  NBL_ERROR_UNSUPPORTED_DEVICE = 3,  /* no variant was built for this GPU's architecture */
  NBL_ERROR_UNSUPPORTED_DTYPE = 4,   /* no variant takes these element types */
  NBL_ERROR_UNSUPPORTED_VALUE = 5,   /* no variant is specialized for this value */
  NBL_ERROR_MISALIGNED_POINTER = 6,  /* a pointer is less aligned than every variant needs */
  NBL_ERROR_INDIVISIBLE_SIZE = 7,    /* a size is not a multiple that every variant needs */
  NBL_ERROR_INVALID_ARGUMENT = 8,    /* the grid is out of range (negative size, division by 0) */
  NBL_ERROR_MODULE_LOAD_FAILED = 9,  /* the driver rejected the cubin or the PTX */
  NBL_ERROR_LAUNCH_FAILED = 10       /* cuLaunchKernel(Ex) failed */
} nbl_status;

/* A CUstream (cudaStream_t); NULL is the legacy default stream of the current context. */
typedef struct CUstream_st* nbl_stream;
/* A CUdeviceptr: a device address (a cudaMalloc'ed pointer cast to integer). */
typedef unsigned long long nbl_devptr;
/* An element type: kind << 16 | bits << 8 | exponent bits (kind 0 unsigned, 1 signed, 2 float). */
typedef int32_t nbl_dtype;

/* The variant a call would launch, and its launch shape (from the F_plan functions). */
typedef struct nbl_plan {
  const char* variant; /* which configuration and target, in the manifest's terms */
  const char* kernel;  /* the kernel's symbol in its module */
  int sm;              /* the target: compute capability x 10 (90 for sm_90a) */
  int is_ptx;          /* 1: PTX, JIT-compiled by the driver on first use */
  unsigned grid[3];
  unsigned block[3];
  unsigned shared_bytes; /* dynamic shared memory */
  unsigned cluster[3];   /* blocks per cluster (sm_90); 1 x 1 x 1: no clusters */
} nbl_plan;
#endif /* NBL_COMMON_V2 */
)C";

std::string write_header_text(const Library& library, const std::vector<Signature>& signatures,
                              const std::set<int32_t>& dtype_codes,
                              const std::map<int32_t, DataType>& dtypes_by_code) {
  const std::string guard = [&] {
    std::string upper = library.name;
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return upper + "_H_";
  }();
  std::string out =
      fill(R"C(/* @LIB@.h: the kernel library '@LIB@', generated by `nibble aot` from @MANIFEST@.
 * Do not edit: change the manifest and regenerate.
 *
 * Every kernel function F comes in two forms:
 *
 *   nbl_status F(nbl_stream stream, ARGUMENTS);       checks, chooses a variant, launches on stream
 *   nbl_status F_plan(ARGUMENTS, nbl_plan* plan);     the same choice, launches nothing
 *
 * The launch is asynchronous, on `stream` of the CUDA context current on the calling thread
 * (as the CUDA runtime API sets it). Before launching, the dispatcher checks the arguments
 * against each variant, in the order listed below: the device's compute capability, element
 * types, specialized values, pointer alignment, divisibility of sizes and the grid's range.
 * The first variant that fits is launched; when none does, the function returns an error
 * code, launches nothing, and @LIB@_last_error() says why each variant was rejected. A grid
 * with no blocks (an empty problem) launches nothing and succeeds.
 *
 * Depends on the CUDA driver only: libcuda.so.1 is opened with dlopen on first use; modules are
 * loaded once per context and kept. All functions are safe to call from several threads.
 */
#ifndef @GUARD@
#define @GUARD@

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

)C",
           {{"LIB", library.name}, {"MANIFEST", library.manifest}, {"GUARD", guard}});
  out += fill(kHeaderCommon, {{"LIB", library.name}});
  out += "\n/* Element types used by this library. */\n";
  for (const int32_t code : dtype_codes) {
    const std::string macro = dtype_macro(dtypes_by_code.at(code));
    out += fmt::format("#ifndef {0}\n#define {0} ((nbl_dtype)0x{1:05x}) /* {2} */\n#endif\n", macro,
                       code, dtypes_by_code.at(code).name());
  }
  out += fill(R"C(
/* A static description of a status code ("no variant was built for this GPU's architecture"). */
const char* @LIB@_explain(nbl_status status);
/* The details of the last failed call on this thread; "" after a successful one. */
const char* @LIB@_last_error(void);
/* For tests: dispatch as if the device had compute capability `cc` (x 10: 80, 89, 90) without
 * asking the driver; 0 restores the device query. Launches still need a real device. */
void @LIB@_override_compute_capability(int cc);
)C",
              {{"LIB", library.name}});

  for (size_t f = 0; f < library.functions.size(); ++f) {
    const Function& function = library.functions[f];
    const Signature& signature = signatures[f];
    out += fmt::format("\n/* {} ({})\n *\n", function.name, comment_safe(function.where));
    for (const Argument& argument : signature.arguments) {
      out += fmt::format(" *   {:<12} {}\n", argument.name, argument.doc);
    }
    if (!signature.fixed.empty()) {
      out += fmt::format(" *   built for {}\n", fmt::join(signature.fixed, ", "));
    }
    out += " *\n * Variants, in the order the dispatcher tries them:\n";
    for (const size_t v : preference_order(function)) {
      const Variant& variant = function.variants[v];
      out += fmt::format(" *   {}\n *     needs {}\n", comment_safe(variant.description),
                         comment_safe(conditions(variant, signature)));
    }
    out += " */\n";
    const std::string parameters = parameter_list(signature);
    out += fmt::format("nbl_status {}(nbl_stream stream{}{});\n", function.name,
                       parameters.empty() ? "" : ", ", parameters);
    out += fmt::format("nbl_status {}_plan({}{}nbl_plan* plan);\n", function.name, parameters,
                       parameters.empty() ? "" : ", ");
  }
  out += fill(R"C(
#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* @GUARD@ */
)C",
              {{"GUARD", guard}});
  return out;
}

const char* const kSourcePrologue =
    R"C(/* @LIB@.c: the kernel library '@LIB@', generated by `nibble aot` from @MANIFEST@.
 * Do not edit: change the manifest and regenerate. C11; needs only libdl and pthreads. */
#include "@LIB@.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* ---- errors ------------------------------------------------------------------------------ */

static _Thread_local char last_error[2048];

static nbl_status fail(nbl_status status, const char* format, ...) {
  va_list arguments;
  va_start(arguments, format);
  vsnprintf(last_error, sizeof last_error, format, arguments);
  va_end(arguments);
  return status;
}

/* Appends to a fixed buffer, truncating. */
static void append(char* buffer, size_t size, const char* format, ...) {
  const size_t used = strlen(buffer);
  if (used + 1 >= size) return;
  va_list arguments;
  va_start(arguments, format);
  vsnprintf(buffer + used, size - used, format, arguments);
  va_end(arguments);
}

const char* @LIB@_last_error(void) { return last_error; }

const char* @LIB@_explain(nbl_status status) {
  switch (status) {
    case NBL_SUCCESS: return "success";
    case NBL_ERROR_DRIVER_UNAVAILABLE: return "the CUDA driver (libcuda.so.1) cannot be used";
    case NBL_ERROR_NO_CONTEXT: return "no CUDA context is current on the calling thread";
    case NBL_ERROR_UNSUPPORTED_DEVICE: return "no variant was built for this GPU's architecture";
    case NBL_ERROR_UNSUPPORTED_DTYPE: return "no variant takes these element types";
    case NBL_ERROR_UNSUPPORTED_VALUE: return "no variant is specialized for this value";
    case NBL_ERROR_MISALIGNED_POINTER: return "a pointer is not aligned as the kernel needs";
    case NBL_ERROR_INDIVISIBLE_SIZE: return "a size is not a multiple the kernel needs";
    case NBL_ERROR_INVALID_ARGUMENT: return "the arguments give an invalid grid";
    case NBL_ERROR_MODULE_LOAD_FAILED: return "the driver could not load the kernel's image";
    case NBL_ERROR_LAUNCH_FAILED: return "the kernel launch failed";
  }
  return "unknown status code";
}

/* ---- the CUDA driver, opened on first use -------------------------------------------------- */

typedef int nbl_cu_result;
typedef int nbl_cu_device;
typedef struct CUctx_st* nbl_cu_context;
typedef struct CUmod_st* nbl_cu_module;
typedef struct CUfunc_st* nbl_cu_function;
enum {
  NBL_CU_COMPUTE_CAPABILITY_MAJOR = 75,
  NBL_CU_COMPUTE_CAPABILITY_MINOR = 76,
  NBL_CU_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8,
  NBL_CU_NON_PORTABLE_CLUSTER_SIZE_ALLOWED = 14,
  NBL_CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION = 4
};

/* CUlaunchAttribute and CUlaunchConfig (cuda.h, CUDA 12), for launches in clusters. */
typedef struct nbl_cu_launch_attribute {
  int id;
  char pad[4];
  union {
    char bytes[64];
    unsigned extents[3];
  } value;
} nbl_cu_launch_attribute;
typedef struct nbl_cu_launch_config {
  unsigned grid[3];
  unsigned block[3];
  unsigned shared_bytes;
  nbl_stream stream;
  nbl_cu_launch_attribute* attributes;
  unsigned attribute_count;
} nbl_cu_launch_config;
_Static_assert(sizeof(nbl_cu_launch_attribute) == 72, "CUlaunchAttribute is 72 bytes");

static struct {
  int usable;
  char error[512];
  nbl_cu_result (*cuInit)(unsigned);
  nbl_cu_result (*cuGetErrorString)(nbl_cu_result, const char**);
  nbl_cu_result (*cuCtxGetCurrent)(nbl_cu_context*);
  nbl_cu_result (*cuCtxGetDevice)(nbl_cu_device*);
  nbl_cu_result (*cuDeviceGetAttribute)(int*, int, nbl_cu_device);
  nbl_cu_result (*cuModuleLoadData)(nbl_cu_module*, const void*);
  nbl_cu_result (*cuModuleGetFunction)(nbl_cu_function*, nbl_cu_module, const char*);
  nbl_cu_result (*cuFuncSetAttribute)(nbl_cu_function, int, int);
  nbl_cu_result (*cuLaunchKernel)(nbl_cu_function, unsigned, unsigned, unsigned, unsigned,
                                  unsigned, unsigned, unsigned, nbl_stream, void**, void**);
  /* Optional (CUDA 12 drivers): only kernels that run in clusters need it. */
  nbl_cu_result (*cuLaunchKernelEx)(const nbl_cu_launch_config*, nbl_cu_function, void**, void**);
} driver;
static pthread_once_t driver_once = PTHREAD_ONCE_INIT;

/* Function pointers cannot be assigned from void* in ISO C; their bytes can. */
static int resolve(void* library, const char* symbol, void* function_pointer) {
  void* address = dlsym(library, symbol);
  if (!address) {
    snprintf(driver.error, sizeof driver.error, "libcuda.so.1 has no %s", symbol);
    return 0;
  }
  memcpy(function_pointer, &address, sizeof address);
  return 1;
}

static void open_driver(void) {
  void* library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    snprintf(driver.error, sizeof driver.error, "cannot load libcuda.so.1: %s", dlerror());
    return;
  }
  if (!resolve(library, "cuInit", &driver.cuInit) ||
      !resolve(library, "cuGetErrorString", &driver.cuGetErrorString) ||
      !resolve(library, "cuCtxGetCurrent", &driver.cuCtxGetCurrent) ||
      !resolve(library, "cuCtxGetDevice", &driver.cuCtxGetDevice) ||
      !resolve(library, "cuDeviceGetAttribute", &driver.cuDeviceGetAttribute) ||
      !resolve(library, "cuModuleLoadData", &driver.cuModuleLoadData) ||
      !resolve(library, "cuModuleGetFunction", &driver.cuModuleGetFunction) ||
      !resolve(library, "cuFuncSetAttribute", &driver.cuFuncSetAttribute) ||
      !resolve(library, "cuLaunchKernel", &driver.cuLaunchKernel)) {
    return;
  }
  {
    void* address = dlsym(library, "cuLaunchKernelEx");
    if (address) memcpy(&driver.cuLaunchKernelEx, &address, sizeof address);
  }
  const nbl_cu_result result = driver.cuInit(0);
  if (result != 0) {
    snprintf(driver.error, sizeof driver.error, "cuInit failed with CUDA error %d", result);
    return;
  }
  driver.usable = 1;
}

static const char* driver_error_text(nbl_cu_result result) {
  const char* text = NULL;
  if (driver.cuGetErrorString && driver.cuGetErrorString(result, &text) == 0 && text) return text;
  return "unknown CUDA error";
}

static nbl_status require_driver(void) {
  pthread_once(&driver_once, open_driver);
  if (driver.usable) return NBL_SUCCESS;
  return fail(NBL_ERROR_DRIVER_UNAVAILABLE, "%s", driver.error);
}

static atomic_int compute_capability_override;

void @LIB@_override_compute_capability(int cc) {
  atomic_store_explicit(&compute_capability_override, cc, memory_order_relaxed);
}

static nbl_status device_compute_capability(int* cc) {
  const int overridden = atomic_load_explicit(&compute_capability_override, memory_order_relaxed);
  if (overridden > 0) {
    *cc = overridden;
    return NBL_SUCCESS;
  }
  const nbl_status status = require_driver();
  if (status != NBL_SUCCESS) return status;
  nbl_cu_context context = NULL;
  nbl_cu_device device = 0;
  int major = 0;
  int minor = 0;
  if (driver.cuCtxGetCurrent(&context) != 0 || context == NULL) {
    return fail(NBL_ERROR_NO_CONTEXT,
                "no CUDA context is current on this thread (the CUDA runtime makes one current on "
                "first use; with the driver API, call cuCtxSetCurrent)");
  }
  nbl_cu_result result = driver.cuCtxGetDevice(&device);
  if (result == 0) {
    result = driver.cuDeviceGetAttribute(&major, NBL_CU_COMPUTE_CAPABILITY_MAJOR, device);
  }
  if (result == 0) {
    result = driver.cuDeviceGetAttribute(&minor, NBL_CU_COMPUTE_CAPABILITY_MINOR, device);
  }
  if (result != 0) {
    return fail(NBL_ERROR_DRIVER_UNAVAILABLE, "cannot read the device's compute capability: %s",
                driver_error_text(result));
  }
  *cc = major * 10 + minor;
  return NBL_SUCCESS;
}

/* ---- variants and their modules ------------------------------------------------------------ */

typedef struct variant_info {
  const char* description;
  const char* kernel;
  int sm;
  int arch_specific;
  int is_ptx;
  const unsigned char* image;
  unsigned block_threads;
  unsigned shared_bytes;
  unsigned cluster[3]; /* blocks per cluster; 1 x 1 x 1: launched without clusters */
} variant_info;

static unsigned cluster_blocks(const variant_info* variant) {
  return variant->cluster[0] * variant->cluster[1] * variant->cluster[2];
}

/* A cubin for sm_XY runs on X.Y and later minors of X; an sm_XYa cubin on X.Y only; PTX for
 * compute_XY is JIT-compiled on X.Y and everything newer. */
static int runs_on(const variant_info* variant, int cc) {
  if (variant->is_ptx) return cc >= variant->sm;
  if (variant->arch_specific) return cc == variant->sm;
  return cc / 10 == variant->sm / 10 && cc >= variant->sm;
}
)C";

const char* const kSourceLoader = R"C(
/* Modules are per context: each variant keeps its function for up to NBL_CONTEXTS contexts. */
#define NBL_CONTEXTS 16
typedef struct loaded_function {
  nbl_cu_context context;
  nbl_cu_function function;
} loaded_function;
static loaded_function loaded[NBL_VARIANTS][NBL_CONTEXTS];
static pthread_mutex_t loaded_mutex = PTHREAD_MUTEX_INITIALIZER;

static nbl_status load_function(int index, nbl_cu_function* function) {
  const variant_info* variant = &variants[index];
  nbl_status status = require_driver();
  if (status != NBL_SUCCESS) return status;
  nbl_cu_context context = NULL;
  if (driver.cuCtxGetCurrent(&context) != 0 || context == NULL) {
    return fail(NBL_ERROR_NO_CONTEXT, "%s: no CUDA context is current on this thread",
                variant->description);
  }
  pthread_mutex_lock(&loaded_mutex);
  loaded_function* slot = NULL;
  for (int i = 0; i < NBL_CONTEXTS; ++i) {
    loaded_function* entry = &loaded[index][i];
    if (entry->context == context) {
      *function = entry->function;
      pthread_mutex_unlock(&loaded_mutex);
      return NBL_SUCCESS;
    }
    if (entry->context == NULL && slot == NULL) slot = entry;
  }
  status = NBL_SUCCESS;
  nbl_cu_module module = NULL;
  nbl_cu_function loaded_kernel = NULL;
  nbl_cu_result result = driver.cuModuleLoadData(&module, variant->image);
  if (result != 0) {
    status = fail(NBL_ERROR_MODULE_LOAD_FAILED, "%s: cuModuleLoadData failed: %s",
                  variant->description, driver_error_text(result));
  } else if ((result = driver.cuModuleGetFunction(&loaded_kernel, module, variant->kernel)) != 0) {
    status = fail(NBL_ERROR_MODULE_LOAD_FAILED, "%s: cuModuleGetFunction(%s) failed: %s",
                  variant->description, variant->kernel, driver_error_text(result));
  } else if (variant->shared_bytes > 48 * 1024 &&
             (result = driver.cuFuncSetAttribute(loaded_kernel,
                                                 NBL_CU_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                                 (int)variant->shared_bytes)) != 0) {
    status = fail(NBL_ERROR_MODULE_LOAD_FAILED,
                  "%s: the device cannot give %u bytes of shared memory: %s",
                  variant->description, variant->shared_bytes, driver_error_text(result));
  } else if (cluster_blocks(variant) > 8 &&
             (result = driver.cuFuncSetAttribute(loaded_kernel,
                                                 NBL_CU_NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 1)) != 0) {
    status = fail(NBL_ERROR_MODULE_LOAD_FAILED,
                  "%s: the device does not allow clusters of %u blocks: %s", variant->description,
                  cluster_blocks(variant), driver_error_text(result));
  }
  if (status == NBL_SUCCESS) {
    *function = loaded_kernel;
    /* With every slot taken the module stays loaded but is looked up again next time. */
    if (slot != NULL) {
      slot->context = context;
      slot->function = loaded_kernel;
    }
  }
  pthread_mutex_unlock(&loaded_mutex);
  return status;
}

static nbl_status launch(int index, const unsigned grid[3], nbl_stream stream, void** arguments) {
  const variant_info* variant = &variants[index];
  if (grid[0] == 0 || grid[1] == 0 || grid[2] == 0) return NBL_SUCCESS; /* nothing to do */
  nbl_cu_function function = NULL;
  if (cluster_blocks(variant) > 1 && driver.cuLaunchKernelEx == NULL) {
    return fail(NBL_ERROR_LAUNCH_FAILED,
                "%s: runs in clusters of %u x %u x %u blocks, which needs cuLaunchKernelEx "
                "(a CUDA 12 driver); this libcuda.so.1 has none",
                variant->description, variant->cluster[0], variant->cluster[1],
                variant->cluster[2]);
  }
  const nbl_status status = load_function(index, &function);
  if (status != NBL_SUCCESS) return status;
  nbl_cu_result result;
  if (cluster_blocks(variant) > 1) {
    nbl_cu_launch_attribute cluster;
    memset(&cluster, 0, sizeof cluster);
    cluster.id = NBL_CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
    for (int d = 0; d < 3; ++d) cluster.value.extents[d] = variant->cluster[d];
    const nbl_cu_launch_config config = {{grid[0], grid[1], grid[2]},
                                         {variant->block_threads, 1, 1},
                                         variant->shared_bytes,
                                         stream,
                                         &cluster,
                                         1};
    result = driver.cuLaunchKernelEx(&config, function, arguments, NULL);
  } else {
    result = driver.cuLaunchKernel(function, grid[0], grid[1], grid[2], variant->block_threads, 1,
                                   1, variant->shared_bytes, stream, arguments, NULL);
  }
  if (result != 0) {
    return fail(NBL_ERROR_LAUNCH_FAILED,
                "%s: %s failed: %s (grid %u x %u x %u in clusters of %u, %u threads, %u bytes "
                "shared)",
                variant->description,
                cluster_blocks(variant) > 1 ? "cuLaunchKernelEx" : "cuLaunchKernel",
                driver_error_text(result), grid[0], grid[1], grid[2], cluster_blocks(variant),
                variant->block_threads, variant->shared_bytes);
  }
  return NBL_SUCCESS;
}

static void fill_plan(int index, const unsigned grid[3], nbl_plan* plan) {
  const variant_info* variant = &variants[index];
  plan->variant = variant->description;
  plan->kernel = variant->kernel;
  plan->sm = variant->sm;
  plan->is_ptx = variant->is_ptx;
  for (int d = 0; d < 3; ++d) plan->grid[d] = grid[d];
  plan->block[0] = variant->block_threads;
  plan->block[1] = 1;
  plan->block[2] = 1;
  plan->shared_bytes = variant->shared_bytes;
  for (int d = 0; d < 3; ++d) plan->cluster[d] = variant->cluster[d];
}

/* Checks the grid the arguments give (whole clusters of the variant's) and stores it. */
static nbl_status check_grid(const int64_t extent[3], int bad, const variant_info* variant,
                             unsigned grid[3], char* why, size_t size) {
  if (bad) {
    snprintf(why, size, "the grid divides by zero");
    return NBL_ERROR_INVALID_ARGUMENT;
  }
  for (int d = 0; d < 3; ++d) {
    const int64_t limit = d == 0 ? INT64_C(2147483647) : INT64_C(65535);
    if (extent[d] < 0 || extent[d] > limit) {
      snprintf(why, size, "grid dimension %d would be %lld blocks (0 to %lld)", d,
               (long long)extent[d], (long long)limit);
      return NBL_ERROR_INVALID_ARGUMENT;
    }
    if (extent[d] % variant->cluster[d] != 0) {
      snprintf(why, size, "grid dimension %d would be %lld blocks, not whole clusters of %u", d,
               (long long)extent[d], variant->cluster[d]);
      return NBL_ERROR_INDIVISIBLE_SIZE;
    }
    grid[d] = (unsigned)extent[d];
  }
  return NBL_SUCCESS;
}

/* The status for a call no variant fits: the reason of the variant that passed the most checks
 * (the codes are in the order of the checks), which is the one the caller most likely meant. */
static nbl_status merge_reasons(nbl_status so_far, nbl_status reason) {
  return reason > so_far ? reason : so_far;
}
)C";

std::string image_array(const std::string& name, const std::vector<uint8_t>& bytes) {
  std::string out =
      fmt::format("static _Alignas(16) const unsigned char {}[{}] = {{", name, bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i % 20 == 0) out += "\n ";
    out += fmt::format(" {},", static_cast<unsigned>(bytes[i]));
  }
  out += "\n};\n";
  return out;
}

// The per-variant test: `static nbl_status F_fits_V(const F_args* a, unsigned grid[3], char* why,
// size_t size)`.
std::string fits_function(const Function& function, const Signature& signature, size_t v,
                          size_t global_index) {
  const Variant& variant = function.variants[v];
  const vm::Program& program = variant.kernel.program;
  std::string out = fmt::format(
      "/* {} */\nstatic nbl_status {}_fits_{}(const {}_args* a, unsigned grid[3], char* why, "
      "size_t size) {{\n",
      comment_safe(variant.description), function.name, v, function.name);
  const auto reject = [&](const std::string& condition, const char* status,
                          const std::string& format, const std::string& values) {
    out += fmt::format("  if ({}) {{\n    snprintf(why, size, {}{});\n    return {};\n  }}\n",
                       condition, c_string(format), values.empty() ? "" : ", " + values, status);
  };
  // Element types, then specialized values, alignment and divisibility: the most fundamental
  // mismatch is the one reported.
  for (const Argument& argument : signature.arguments) {
    if (argument.kind != Argument::Kind::DType) continue;
    const DataType dtype = program.params[static_cast<size_t>(argument.param)].dtype;
    reject(fmt::format("a->{} != {}", argument.name, dtype_macro(dtype)),
           "NBL_ERROR_UNSUPPORTED_DTYPE",
           fmt::format("{} is %s, this variant takes {}", argument.of, dtype.name()),
           fmt::format("dtype_name(a->{})", argument.name));
  }
  for (const Argument& argument : signature.arguments) {
    if (argument.kind != Argument::Kind::Constant) continue;
    const int64_t value = *program.params[static_cast<size_t>(argument.param)].value;
    reject(fmt::format("(int64_t)a->{} != INT64_C({})", argument.name, value),
           "NBL_ERROR_UNSUPPORTED_VALUE",
           fmt::format("{} = %lld, this variant is specialized for {}", argument.name, value),
           fmt::format("(long long)a->{}", argument.name));
  }
  for (const Argument& argument : signature.arguments) {
    const vm::Parameter& param = program.params[static_cast<size_t>(argument.param)];
    if (argument.kind == Argument::Kind::Pointer && param.alignment_bytes > 1) {
      reject(
          fmt::format("a->{} % {}u != 0", argument.name, param.alignment_bytes),
          "NBL_ERROR_MISALIGNED_POINTER",
          fmt::format("{} = 0x%llx is not {}-byte aligned", argument.name, param.alignment_bytes),
          fmt::format("a->{}", argument.name));
    }
  }
  for (const Argument& argument : signature.arguments) {
    const vm::Parameter& param = program.params[static_cast<size_t>(argument.param)];
    if (argument.kind == Argument::Kind::Scalar && param.divisor > 1) {
      reject(fmt::format("(int64_t)a->{} % INT64_C({}) != 0", argument.name, param.divisor),
             "NBL_ERROR_INDIVISIBLE_SIZE",
             fmt::format("{} = %lld is not a multiple of {}", argument.name, param.divisor),
             fmt::format("(long long)a->{}", argument.name));
    }
  }
  // The grid, from the program's grid expressions.
  const CParameter parameter = [&](const vm::Expr& e) -> std::string {
    const auto index = static_cast<size_t>(e.index());
    if (index >= program.params.size()) {
      throw GenerateError(fmt::format("{}: the grid reads an unknown parameter", function.where));
    }
    const vm::Parameter& param = program.params[index];
    if (param.kind == vm::Parameter::Kind::Pointer) {
      throw GenerateError(
          fmt::format("{}: the grid reads pointer parameter '{}'", function.where, param.name));
    }
    for (const Argument& argument : signature.arguments) {
      if (argument.param == static_cast<int>(index) && argument.kind != Argument::Kind::DType &&
          argument.kind != Argument::Kind::Pointer) {
        return fmt::format("(int64_t)a->{}", argument.name);
      }
    }
    return fmt::format("INT64_C({})", *param.value);  // fixed compile-time value
  };
  out +=
      "  int bad_flag = 0;\n  int* bad = &bad_flag;\n  (void)bad;\n  const int64_t extent[3] = {";
  for (size_t d = 0; d < 3; ++d) {
    const vm::Expr& expr = program.grid[d];
    std::string text = "INT64_C(1)";
    if (!expr.empty()) {
      try {
        text = c_expression(expr, parameter);
      } catch (const GenerateError& error) {
        throw GenerateError(fmt::format("{}: {}: grid dimension {}: {}", function.where,
                                        variant.description, d, error.what()));
      }
    }
    out += fmt::format("{}\n      {}", d == 0 ? "" : ",", text);
  }
  out += fmt::format(
      "}};\n  return check_grid(extent, bad_flag, &variants[{}], grid, why, size);\n}}\n\n",
      global_index);
  return out;
}

std::string dispatcher(const Function& function, const Signature& signature,
                       const std::vector<size_t>& global_index) {
  const std::string& name = function.name;
  std::string out;
  // The arguments, gathered once.
  out += fmt::format("typedef struct {}_args {{\n", name);
  for (const Argument& argument : signature.arguments) {
    out += fmt::format("  {} {};\n", argument.c_type, argument.name);
  }
  if (signature.arguments.empty()) out += "  char unused;\n";
  out += fmt::format("}} {}_args;\n\n", name);
  for (size_t v = 0; v < function.variants.size(); ++v) {
    out += fits_function(function, signature, v, global_index[v]);
  }
  // The choice.
  const std::vector<size_t> order = preference_order(function);
  std::vector<std::string> tests;
  std::vector<std::string> indices;
  for (const size_t v : order) {
    tests.push_back(fmt::format("{}_fits_{}", name, v));
    indices.push_back(std::to_string(global_index[v]));
  }
  std::set<std::string> targets;
  for (const Variant& variant : function.variants) {
    targets.insert(variant.embed_ptx ? "compute_" + variant.kernel.target.name().substr(3)
                                     : variant.kernel.target.name());
  }
  std::vector<std::string> values;
  for (const Argument& argument : signature.arguments)
    values.push_back(argument.name);
  if (values.empty()) values.push_back("0");
  std::vector<std::string> kernel_arguments;
  for (const size_t argument : signature.kernel_arguments) {
    kernel_arguments.push_back(
        fmt::format("(void*)&nbl_args.{}", signature.arguments[argument].name));
  }
  if (kernel_arguments.empty()) kernel_arguments.push_back("NULL");
  const std::string parameters = parameter_list(signature);
  out += fill(R"C(static nbl_status @F@_select(const @F@_args* a, int* chosen, unsigned grid[3]) {
  typedef nbl_status (*fits_function)(const @F@_args*, unsigned[3], char*, size_t);
  static const fits_function tests[] = {@TESTS@};
  static const int indices[] = {@INDICES@};
  last_error[0] = '\0';
  int cc = 0;
  const nbl_status status = device_compute_capability(&cc);
  if (status != NBL_SUCCESS) return status;
  char reasons[1536] = "";
  nbl_status common = NBL_SUCCESS;
  for (size_t i = 0; i < sizeof indices / sizeof indices[0]; ++i) {
    const variant_info* variant = &variants[indices[i]];
    if (!runs_on(variant, cc)) continue;
    char why[256] = "";
    const nbl_status reason = tests[i](a, grid, why, sizeof why);
    if (reason == NBL_SUCCESS) {
      *chosen = indices[i];
      return NBL_SUCCESS;
    }
    common = merge_reasons(common, reason);
    append(reasons, sizeof reasons, "\n  %s: %s", variant->description, why);
  }
  if (common == NBL_SUCCESS) {
    return fail(NBL_ERROR_UNSUPPORTED_DEVICE,
                "@F@: no variant runs on a device of compute capability %d.%d (built for @TARGETS@)",
                cc / 10, cc % 10);
  }
  return fail(common, "@F@: no variant fits these arguments:%s", reasons);
}

nbl_status @F@(nbl_stream stream@COMMA_PARAMETERS@) {
  /* Not const: the launch takes the arguments' addresses as void*. */
  @F@_args nbl_args = {@VALUES@};
  int nbl_chosen = 0;
  unsigned nbl_grid[3];
  const nbl_status nbl_result = @F@_select(&nbl_args, &nbl_chosen, nbl_grid);
  if (nbl_result != NBL_SUCCESS) return nbl_result;
  void* nbl_kernel_arguments[] = {@KERNEL_ARGUMENTS@};
  return launch(nbl_chosen, nbl_grid, stream, nbl_kernel_arguments);
}

nbl_status @F@_plan(@PARAMETERS_COMMA@nbl_plan* plan) {
  const @F@_args nbl_args = {@VALUES@};
  int nbl_chosen = 0;
  unsigned nbl_grid[3];
  if (plan == NULL) return fail(NBL_ERROR_INVALID_ARGUMENT, "@F@_plan: plan is NULL");
  const nbl_status nbl_result = @F@_select(&nbl_args, &nbl_chosen, nbl_grid);
  if (nbl_result != NBL_SUCCESS) return nbl_result;
  fill_plan(nbl_chosen, nbl_grid, plan);
  return NBL_SUCCESS;
}

)C",
              {{"F", name},
               {"TESTS", fmt::format("{}", fmt::join(tests, ", "))},
               {"INDICES", fmt::format("{}", fmt::join(indices, ", "))},
               {"TARGETS", fmt::format("{}", fmt::join(targets, ", "))},
               {"COMMA_PARAMETERS", parameters.empty() ? "" : ", " + parameters},
               {"PARAMETERS_COMMA", parameters.empty() ? "" : parameters + ", "},
               {"VALUES", fmt::format("{}", fmt::join(values, ", "))},
               {"KERNEL_ARGUMENTS", fmt::format("{}", fmt::join(kernel_arguments, ", "))}});
  return out;
}

}  // namespace

LibraryFiles write_library(const Library& library) {
  if (library.functions.empty()) throw GenerateError(library.name + ": the library has no kernels");
  std::vector<Signature> signatures;
  std::set<int32_t> dtype_codes;
  std::map<int32_t, DataType> dtypes_by_code;
  for (const Function& function : library.functions) {
    if (function.variants.empty()) fail(function, "no variants");
    signatures.push_back(signature_of(function));
    for (const Variant& variant : function.variants) {
      for (const vm::Parameter& param : variant.kernel.program.params) {
        if (param.kind != vm::Parameter::Kind::Pointer) continue;
        dtype_codes.insert(dtype_code(param.dtype));
        dtypes_by_code.emplace(dtype_code(param.dtype), param.dtype);
      }
    }
  }

  LibraryFiles files;
  files.header = write_header_text(library, signatures, dtype_codes, dtypes_by_code);

  std::string& out = files.source;
  out = fill(kSourcePrologue, {{"LIB", library.name}, {"MANIFEST", library.manifest}});
  out +=
      "\n/* ---- images: cubins, and PTX (NUL-terminated) for newer GPUs "
      "------------------------------ */\n\n";
  std::vector<std::vector<size_t>> global_index(library.functions.size());
  std::string table;
  size_t count = 0;
  for (size_t f = 0; f < library.functions.size(); ++f) {
    const Function& function = library.functions[f];
    for (const Variant& variant : function.variants) {
      const codegen::CompiledKernel& kernel = variant.kernel;
      std::vector<uint8_t> image;
      if (variant.embed_ptx) {
        image.assign(kernel.ptx.begin(), kernel.ptx.end());
        image.push_back(0);
      } else {
        image = kernel.cubin;
        if (image.empty()) {
          fail(function, fmt::format("{}: no cubin (is ptxas installed?)", variant.description));
        }
      }
      out += fmt::format("/* {} */\n", comment_safe(variant.description));
      out += image_array(fmt::format("image_{}", count), image);
      const std::array<int64_t, 3>& cluster = kernel.program.cluster;
      table += fmt::format("    {{{}, {}, {}, {}, {}, image_{}, {}u, {}u, {{{}u, {}u, {}u}}}},\n",
                           c_string(variant.description), c_string(kernel.name), kernel.target.sm,
                           kernel.target.arch_specific ? 1 : 0, variant.embed_ptx ? 1 : 0, count,
                           kernel.block_threads, kernel.dynamic_shared_bytes, cluster[0],
                           cluster[1], cluster[2]);
      global_index[f].push_back(count++);
    }
  }
  out += fmt::format(
      "\n#define NBL_VARIANTS {}\nstatic const variant_info variants[NBL_VARIANTS] = {{\n{}}};\n",
      count, table);
  out += kSourceLoader;
  out += "\n";
  out += kCExprHelpers;
  const bool takes_dtypes = std::any_of(signatures.begin(), signatures.end(), [](auto& signature) {
    return std::any_of(signature.arguments.begin(), signature.arguments.end(),
                       [](auto& argument) { return argument.kind == Argument::Kind::DType; });
  });
  if (takes_dtypes) {
    out += "\nstatic const char* dtype_name(nbl_dtype dtype) {\n  switch (dtype) {\n";
    for (const int32_t code : dtype_codes) {
      out += fmt::format("    case {}: return \"{}\";\n", dtype_macro(dtypes_by_code.at(code)),
                         dtypes_by_code.at(code).name());
    }
    out += "  }\n  return \"an element type this library does not know\";\n}\n";
  }
  for (size_t f = 0; f < library.functions.size(); ++f) {
    out += fmt::format("\n/* ---- {} ---- */\n\n", library.functions[f].name);
    out += dispatcher(library.functions[f], signatures[f], global_index[f]);
  }
  return files;
}

int32_t dtype_code(const DataType& dtype) {
  const int kind = dtype.kind() == dtypes::Kind::UInt  ? 0
                   : dtype.kind() == dtypes::Kind::Int ? 1
                                                       : 2;
  return (kind << 16) | (dtype.bits() << 8) | dtype.exponent_bits();
}

}  // namespace nibble::aot
