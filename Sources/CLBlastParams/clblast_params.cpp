#define CL_TARGET_OPENCL_VERSION 120
#include "clblast_params.h"

#include <clblast.h>
#include <cstring>
#include <map>
#include <string>
#include <unordered_map>

extern "C" int swiftcnn_clblast_retrieve_parameters(void *device, const char *kernel, size_t capacity,
                                                    size_t name_length, char *names, size_t *values, size_t *count) {
  std::unordered_map<std::string, size_t> parameters;
  const auto status = clblast::RetrieveParameters(static_cast<cl_device_id>(device), std::string(kernel),
                                                  clblast::Precision::kSingle, parameters);
  if (status != clblast::StatusCode::kSuccess) { return static_cast<int>(status); }
  const std::map<std::string, size_t> sorted(parameters.begin(), parameters.end());
  *count = sorted.size();
  size_t i = 0;
  for (const auto &p : sorted) {
    if (i >= capacity || name_length == 0) { break; }
    std::strncpy(names + i * name_length, p.first.c_str(), name_length - 1);
    names[i * name_length + name_length - 1] = '\0';
    values[i] = p.second;
    ++i;
  }
  return 0;
}
