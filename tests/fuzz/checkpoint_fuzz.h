// Shared by the checkpoint fuzz harnesses: a real checkpoint of a tiny model (two layers, hidden 4,
// one exit) written once per process into a temporary directory — single-process (state.json) and
// distributed (manifest.json + one rank shard) — and its model config.
#pragma once

#include <string>

#include "exec/gpt/gpt.h"
#include "model/scenario.h"

namespace eellm::exec::fuzz {

struct TinyCheckpoints {
  Scenario scenario;
  GptConfig cfg;
  std::string single_dir, single_sub;  // DIR (with `latest`) and its iter_* directory
  std::string dist_dir, dist_sub;
};
// Created on the first call (aborts if the checkpoints cannot be written: the harness is broken).
const TinyCheckpoints& tiny_checkpoints();

// Writes `bytes` to path (aborting on failure).
void put_file(const std::string& path, const std::string& bytes);

}  // namespace eellm::exec::fuzz
