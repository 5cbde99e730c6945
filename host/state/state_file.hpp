// Cluster state files: Kubernetes objects written as YAML (multi-document and/or `kind: List`,
// as `kubectl get -o yaml` prints them). knpctl simulate evaluates against one; knpd --state
// enforces one (and re-reads it on SIGHUP) when no API server is used.
#pragma once

#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "common/result.hpp"

namespace knp::host {

// One Kubernetes object from a state file, with where it was written.
struct StateObject {
    std::string apiVersion, kind, ns, name;
    boost::json::object object;  // metadata.managedFields stripped, as the watch does
    std::string file;
    int line = 0;
    std::string where() const { return fmt::format("{}:{}", file, line); }
};

// Errors name file:line.
Result<std::vector<StateObject>> loadStateFile(const std::string& path);

}  // namespace knp::host
