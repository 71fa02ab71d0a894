// Reading and writing scenario files (YAML). A scenario names its cluster profile
// (scenarios/clusters/NAME.yaml), which names its device (scenarios/devices/NAME.yaml); both are
// resolved on load. Unknown keys, wrong types and bad enum values are errors naming the field path
// (with a "did you mean" for near-misses). Thread-compatible: no shared state.
#pragma once

#include <cstdint>
#include <string>

#include "model/scenario.h"
#include "model/status.h"

namespace eellm {

// Loads a scenario file, or a shipped scenario by name ("tiny-ee" → scenarios/tiny-ee.yaml).
// Resolves the cluster and device profiles and runs check_scenario (every error of
// validate_scenario: bounds, overflow, ranges, layout); memory warnings are left to the caller.
StatusOr<Scenario> load_scenario(const std::string& path_or_name);

// The errors of validate_scenario (all of them, one per line, each prefixed with `source` when given)
// as one Status; ok when there are none.
// The one validation every entry point runs before any arithmetic on a scenario (describe,
// simulate, plan, sweep, compare, convert, train, the GUI's file loading).
Status check_scenario(const Scenario& scenario, const std::string& source = "");

// The contents of the regular file `path` (at most max_bytes): a directory, FIFO, device (/dev/zero),
// socket, symlink loop or over-long name is refused by type before anything is read, with `what`
// ("scenario", "trace", ...) and the path named. Never blocks on a FIFO. With the environment variable
// EELLM_FAULT_INJECT=reader it throws instead (tests of the entry points' exception net).
StatusOr<std::string> read_regular_file(const std::string& path, const std::string& what, uint64_t max_bytes);

// Parses YAML text; `source` names it in messages, `base_dir` resolves relative profile paths.
StatusOr<Scenario> parse_scenario(const std::string& yaml_text, const std::string& source = "<string>",
                                  const std::string& base_dir = ".");

// Loads a device profile (a file path or a name under scenarios/devices/).
StatusOr<DeviceProfile> load_device_profile(const std::string& path_or_name);
// Loads a cluster profile (a file path or a name under scenarios/clusters/) and its device.
StatusOr<ClusterSpec> load_cluster_profile(const std::string& path_or_name);

// Writes a scenario as YAML that parse_scenario reads back to an equal Scenario. The cluster is
// written by name with any overrides inline.
std::string scenario_to_yaml(const Scenario& scenario);

// The folder holding shipped scenarios: $EELLM_SCENARIOS, else ../share/eellm/scenarios next to
// the binary, else the source tree's scenarios/.
std::string scenarios_dir();

}  // namespace eellm
