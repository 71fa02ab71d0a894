#include "model/scenario.h"

namespace eellm {

const char* to_string(Normalization v) {
  return v == Normalization::kLayerNorm ? "LayerNorm" : "RMSNorm";
}
const char* to_string(PositionEmbedding v) {
  return v == PositionEmbedding::kLearnedAbsolute ? "learned_absolute" : "rope";
}
const char* to_string(Activation v) {
  return v == Activation::kGelu ? "gelu" : "swiglu";
}
const char* to_string(DType v) {
  switch (v) {
    case DType::kFP32:
      return "fp32";
    case DType::kFP16:
      return "fp16";
    case DType::kBF16:
      return "bf16";
  }
  return "?";
}
const char* to_string(RecomputeGranularity v) {
  switch (v) {
    case RecomputeGranularity::kNone:
      return "none";
    case RecomputeGranularity::kSelective:
      return "selective";
    case RecomputeGranularity::kFull:
      return "full";
  }
  return "?";
}
const char* to_string(WarmupStyle v) {
  return v == WarmupStyle::kLinear ? "linear" : "cosine";
}
const char* to_string(LrDecayStyle v) {
  switch (v) {
    case LrDecayStyle::kConstant:
      return "constant";
    case LrDecayStyle::kLinear:
      return "linear";
    case LrDecayStyle::kCosine:
      return "cosine";
  }
  return "?";
}
const char* to_string(ScheduleKind v) {
  switch (v) {
    case ScheduleKind::kNoPipelining:
      return "none";
    case ScheduleKind::kGPipe:
      return "gpipe";
    case ScheduleKind::k1F1B:
      return "1f1b";
    case ScheduleKind::kInterleaved1F1B:
      return "interleaved";
    case ScheduleKind::kZBH1:
      return "zb-h1";
    case ScheduleKind::kEE1F1B:
      return "ee-1f1b";
    case ScheduleKind::kEEFill:
      return "ee-fill";
    case ScheduleKind::kEETuning:
      return "ee-tuning";
  }
  return "?";
}
const char* to_string(FillSemantics v) {
  switch (v) {
    case FillSemantics::kEELLM:
      return "ee-llm";
    case FillSemantics::kExitTruncated:
      return "exit-truncated";
  }
  return "?";
}
const char* to_string(Confidence v) {
  switch (v) {
    case Confidence::kMaxProb:
      return "max_prob";
    case Confidence::kMargin:
      return "margin";
    case Confidence::kEntropy:
      return "entropy";
  }
  return "?";
}
const char* to_string(InferenceMethod v) {
  switch (v) {
    case InferenceMethod::kFull:
      return "full";
    case InferenceMethod::kRecompute:
      return "recompute";
    case InferenceMethod::kPipeline:
      return "pipeline";
    case InferenceMethod::kSpeculative:
      return "speculative";
  }
  return "?";
}
const char* to_string(DeviceKind v) {
  return v == DeviceKind::kCPU ? "cpu" : "cuda";
}

const char* to_string(IntraNodeFabric v) {
  switch (v) {
    case IntraNodeFabric::kNVSwitch:
      return "nvswitch";
    case IntraNodeFabric::kPCIe:
      return "pcie";
    case IntraNodeFabric::kSharedMemory:
      return "shared_memory";
  }
  return "?";
}

}  // namespace eellm
