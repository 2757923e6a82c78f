// fused_add_relu: out = max(a + b, 0) in one pass over memory, for the
// residual join of a basic block (He et al. 2015, figure 2).
// Backward: grad_a = grad_b = g * (out > 0).
#include <cstdint>
#include "lib_api.h"

using namespace mxnet::ext;

MXReturnValue parseAttrs(const std::unordered_map<std::string, std::string>& attrs,
                         int* num_in, int* num_out) {
  *num_in = 2;
  *num_out = 1;
  return MX_SUCCESS;
}

MXReturnValue inferType(const std::unordered_map<std::string, std::string>& attrs,
                        std::vector<int>* intypes, std::vector<int>* outtypes) {
  if (intypes->at(0) != kFloat32 || intypes->at(1) != kFloat32) {
    MX_ERROR_MSG << "fused_add_relu: float32 inputs only";
    return MX_FAIL;
  }
  outtypes->at(0) = kFloat32;
  return MX_SUCCESS;
}

MXReturnValue inferShape(const std::unordered_map<std::string, std::string>& attrs,
                         std::vector<std::vector<unsigned int>>* inshapes,
                         std::vector<std::vector<unsigned int>>* outshapes) {
  if (inshapes->at(0) != inshapes->at(1)) {
    MX_ERROR_MSG << "fused_add_relu: both inputs must have the same shape";
    return MX_FAIL;
  }
  outshapes->at(0) = inshapes->at(0);
  return MX_SUCCESS;
}

MXReturnValue forwardCPU(const std::unordered_map<std::string, std::string>& attrs,
                         std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                         const OpResource& res) {
  const float* a = inputs->at(0).data<float>();
  const float* b = inputs->at(1).data<float>();
  float* out = outputs->at(0).data<float>();
  const int64_t n = inputs->at(0).size();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float s = a[i] + b[i];
    out[i] = s > 0.f ? s : 0.f;
  }
  return MX_SUCCESS;
}

// inputs: out_grad, a, b, out (MXNet passes output grads, inputs, then outputs).
MXReturnValue backwardCPU(const std::unordered_map<std::string, std::string>& attrs,
                          std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                          const OpResource& res) {
  const float* g = inputs->at(0).data<float>();
  const float* out = inputs->at(3).data<float>();
  float* ga = outputs->at(0).data<float>();
  float* gb = outputs->at(1).data<float>();
  const int64_t n = inputs->at(0).size();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    // g is loaded unconditionally so that the select vectorizes: a conditional
    // load compiles to a branch that mispredicts on half of the elements.
    const float gi = g[i];
    const float v = out[i] > 0.f ? gi : 0.f;
    ga[i] = v;
    gb[i] = v;
  }
  return MX_SUCCESS;
}

REGISTER_OP(fused_add_relu)
.setParseAttrs(parseAttrs)
.setInferType(inferType)
.setInferShape(inferShape)
.setForward(forwardCPU, "cpu")
.setBackward(backwardCPU, "cpu");

MXReturnValue initialize(int version) {
  if (version >= 10700) return MX_SUCCESS;
  MX_ERROR_MSG << "fused_add_relu needs MXNet >= 1.7, found " << version;
  return MX_FAIL;
}
