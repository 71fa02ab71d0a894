// Reading and writing scenario files (YAML). A scenario names its cluster profile
// (scenarios/clusters/NAME.yaml), which names its device (scenarios/devices/NAME.yaml); both are
// resolved on load. Unknown keys, wrong types and bad enum values are errors naming the field path
// (with a "did you mean" for near-misses). Thread-compatible: no shared state.
#pragma once

#include <string>

#include "model/scenario.h"
#include "model/status.h"

namespace eellm {

// Loads a scenario file, or a shipped scenario by name ("tiny-ee" → scenarios/tiny-ee.yaml).
// Resolves the cluster and device profiles and checks the layout (derive_layout); memory warnings
// are left to validate_scenario().
StatusOr<Scenario> load_scenario(const std::string& path_or_name);

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
