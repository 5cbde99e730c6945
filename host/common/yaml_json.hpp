// YAML documents as a Kubernetes user writes them, turned into the JSON the API server would
// hold. Used for pipeline.yaml instance configs and for knpctl's state files.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>
#include <yaml-cpp/yaml.h>

#include "common/result.hpp"

namespace knp::host {

// 1-based line of a node ("?" marks have line -1 → 0).
int yamlLine(const YAML::Node& node) noexcept;

// Parses every document of a YAML file (or string). Errors name file:line:column.
Result<std::vector<YAML::Node>> loadYamlFile(const std::string& path);
Result<std::vector<YAML::Node>> loadYamlString(std::string_view text, std::string_view name);

// Converts with YAML 1.2 core-schema typing of plain scalars (null, bool, int, float),
// quoted scalars always strings, like sigs.k8s.io/yaml does for kubectl. Errors name the line.
Result<boost::json::value> yamlToJson(const YAML::Node& node, std::string_view file);

// The node a JSON pointer ("/rules/0/cidrs/1") designates below `root`, if it exists; used to
// turn a plugin's config-error pointer back into a line of pipeline.yaml.
std::optional<YAML::Node> yamlAtPointer(const YAML::Node& root, std::string_view pointer);

}  // namespace knp::host
