#include "resources.hpp"

#include "objects.hpp"

#include <algorithm>
#include <cctype>

namespace knp::lab {

namespace {

const std::vector<std::string> kPodFields = {
    "spec.nodeName",    "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
    "spec.hostNetwork", "status.phase",       "status.podIP",       "status.nominatedNodeName"};

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

struct VersionKey {
    int major = 0;
    int stability = 3;  // 3 GA, 2 beta, 1 alpha, 0 not a Kubernetes version
    int minor = 0;
    bool kube = false;
};

VersionKey parseVersion(std::string_view v) {
    VersionKey k;
    if (v.size() < 2 || v[0] != 'v' || !std::isdigit(static_cast<unsigned char>(v[1]))) return k;
    std::size_t i = 1;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) k.major = k.major * 10 + (v[i++] - '0');
    std::string_view rest = v.substr(i);
    if (rest.empty()) {
        k.kube = true;
        return k;
    }
    std::string_view level;
    if (rest.starts_with("beta")) {
        k.stability = 2;
        level = rest.substr(4);
    } else if (rest.starts_with("alpha")) {
        k.stability = 1;
        level = rest.substr(5);
    } else {
        return k;
    }
    if (level.empty() || !std::all_of(level.begin(), level.end(), [](char c) { return std::isdigit(c); })) return k;
    for (char c : level) k.minor = k.minor * 10 + (c - '0');
    k.kube = true;
    return k;
}

}  // namespace

int compareVersionPriority(std::string_view a, std::string_view b) {
    VersionKey ka = parseVersion(a), kb = parseVersion(b);
    if (ka.kube != kb.kube) return ka.kube ? -1 : 1;
    if (!ka.kube) return a < b ? -1 : (a == b ? 0 : 1);
    if (ka.stability != kb.stability) return ka.stability > kb.stability ? -1 : 1;
    if (ka.major != kb.major) return ka.major > kb.major ? -1 : 1;
    if (ka.minor != kb.minor) return ka.minor > kb.minor ? -1 : 1;
    return 0;
}

Registry::Registry() {
    types_.push_back(
        {"", "v1", "namespaces", "namespace", "Namespace", false, {"ns"}, {}, false, false, {"status.phase"}});
    types_.push_back({"", "v1", "nodes", "node", "Node", false, {"no"}, {}, false, true, {"spec.unschedulable"}});
    types_.push_back({"", "v1", "pods", "pod", "Pod", true, {"po"}, {"all"}, false, true, kPodFields});
    types_.push_back({"networking.k8s.io",
                      "v1",
                      "networkpolicies",
                      "networkpolicy",
                      "NetworkPolicy",
                      true,
                      {"netpol"},
                      {},
                      true,
                      false,
                      {}});
    types_.push_back({"policy.networking.k8s.io",
                      "v1alpha1",
                      "adminnetworkpolicies",
                      "adminnetworkpolicy",
                      "AdminNetworkPolicy",
                      false,
                      {"anp"},
                      {},
                      true,
                      false,
                      {}});
    types_.push_back({"policy.networking.k8s.io",
                      "v1alpha1",
                      "baselineadminnetworkpolicies",
                      "baselineadminnetworkpolicy",
                      "BaselineAdminNetworkPolicy",
                      false,
                      {"banp"},
                      {},
                      true,
                      false,
                      {}});
    types_.push_back({"policy.networking.k8s.io",
                      "v1alpha2",
                      "clusternetworkpolicies",
                      "clusternetworkpolicy",
                      "ClusterNetworkPolicy",
                      false,
                      {"cnp"},
                      {},
                      true,
                      false,
                      {}});
}

host::Status Registry::addCrd(std::string_view spec) {
    std::vector<std::string> parts;
    for (auto p : splitString(spec, '/')) parts.emplace_back(p);
    if (parts.size() < 4 || parts.size() > 5)
        return host::makeError("--crd \"{}\": want group/version/plural/Kind[/namespaced|cluster]", spec);
    for (const auto& p : parts)
        if (p.empty()) return host::makeError("--crd \"{}\": empty part", spec);
    bool namespaced = true;
    if (parts.size() == 5) {
        if (parts[4] == "cluster")
            namespaced = false;
        else if (parts[4] != "namespaced")
            return host::makeError("--crd \"{}\": scope must be namespaced or cluster", spec);
    }
    if (parts[0].find('.') == std::string::npos)
        return host::makeError("--crd \"{}\": a CRD group must contain a dot", spec);
    if (parseVersion(parts[1]).kube == false)
        return host::makeError("--crd \"{}\": \"{}\" is not a Kubernetes API version", spec, parts[1]);
    if (lower(parts[2]) != parts[2]) return host::makeError("--crd \"{}\": the plural must be lower case", spec);
    if (find(parts[0], parts[1], parts[2])) return host::makeError("--crd \"{}\": already registered", spec);
    types_.push_back({parts[0], parts[1], parts[2], lower(parts[3]), parts[3], namespaced, {}, {}, true, false, {}});
    return host::okStatus();
}

ResourceType* Registry::find(std::string_view group, std::string_view version, std::string_view plural) {
    for (auto& t : types_)
        if (t.group == group && t.version == version && t.plural == plural) return &t;
    return nullptr;
}

ResourceType* Registry::findKind(std::string_view apiVersion, std::string_view kind) {
    for (auto& t : types_)
        if (t.apiVersion() == apiVersion && t.kind == kind) return &t;
    return nullptr;
}

ResourceType* Registry::findByName(std::string_view name) {
    ResourceType* byPlural = nullptr;
    int matches = 0;
    for (auto& t : types_) {
        if (t.groupResource() == name) return &t;
        if (t.plural == name) {
            byPlural = &t;
            ++matches;
        }
    }
    return matches == 1 ? byPlural : nullptr;
}

std::vector<Registry::Group> Registry::visibleGroups() const {
    std::vector<Group> groups;
    for (const auto& t : types_) {
        if (t.group.empty() || t.hidden) continue;
        auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& x) { return x.name == t.group; });
        if (g == groups.end()) g = groups.insert(groups.end(), Group{t.group, {}});
        if (std::find(g->versions.begin(), g->versions.end(), t.version) == g->versions.end())
            g->versions.push_back(t.version);
    }
    for (auto& g : groups)
        std::sort(g.versions.begin(), g.versions.end(),
                  [](const std::string& a, const std::string& b) { return compareVersionPriority(a, b) < 0; });
    return groups;
}

bool Registry::visible(std::string_view group, std::string_view version) const {
    return std::any_of(types_.begin(), types_.end(),
                       [&](const ResourceType& t) { return t.group == group && t.version == version && !t.hidden; });
}

}  // namespace knp::lab
