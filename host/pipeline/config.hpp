// pipeline.yaml: the ordered list of plugin instances an operator runs.
//
//   apiVersion: knp.dev/v1alpha1
//   kind: Pipeline
//   defaults: {onError: deny}
//   instances:
//     - name: allow-dns          # unique, DNS label
//       library: allowlist       # bare name → searched in the plugin path; or a path
//       enabled: true            # optional, default true
//       onError: deny            # optional: deny | accept | next; default from defaults
//       config: {...}            # optional; handed to the plugin as JSON
//
// Errors are one line: "<file>:<line>: <field>: <what is wrong>".
#pragma once

#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "common/result.hpp"
#include "plugins/instance.hpp"

namespace knp::host {

inline constexpr std::string_view kPipelineApiVersion = "knp.dev/v1alpha1";
inline constexpr std::string_view kPipelineKind = "Pipeline";

struct InstanceConfig {
    std::string name;
    std::string library;
    std::string configJson = "{}";
    OnError onError = OnError::Deny;
    bool enabled = true;
    int line = 0;         // the entry's line
    int libraryLine = 0;  // the library field's line
    YAML::Node config;    // kept to map a plugin's JSON-pointer error back to a line
    std::string field;    // "instances[2]"
};

struct PipelineConfig {
    std::string file;  // as given
    std::string dir;   // base for relative library paths
    OnError defaultOnError = OnError::Deny;
    std::vector<InstanceConfig> instances;  // in pipeline order, disabled ones included

    // "<file>:<line>: " for messages about an entry.
    std::string where(int line) const { return fmt::format("{}:{}: ", file, line); }
    // The line a plugin's config-error pointer designates, or the entry's line.
    int lineOf(const InstanceConfig& inst, std::string_view pointer) const;
};

Result<PipelineConfig> parsePipelineFile(const std::string& path);
Result<PipelineConfig> parsePipelineText(std::string_view text, const std::string& name, const std::string& dir);

}  // namespace knp::host
