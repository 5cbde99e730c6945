// The kinds the lab API server serves: the built-in ones (core v1 namespaces, nodes, pods;
// NetworkPolicy; the network-policy-api CRDs) and any registered with --crd.
// THREAD: owned by the server's single io_context thread; `hidden` flips at run time there.
#pragma once

#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace knp::lab {

struct ResourceType {
    std::string group;  // "" for the core group
    std::string version;
    std::string plural;
    std::string singular;
    std::string kind;
    bool namespaced = true;
    std::vector<std::string> shortNames;
    std::vector<std::string> categories;
    // Spec changes bump metadata.generation (CRDs and most built-ins; not pods, nodes, namespaces).
    bool generation = true;
    // Strategic merge and server-side apply merge lists such as containers by key, as the
    // built-in schemas say; CRD lists are atomic (replaced).
    bool keyedLists = false;
    // Field selectors beyond metadata.name and metadata.namespace.
    std::vector<std::string> fieldLabels;
    // Fault injection: behaves as if its CRD were not installed (404, absent from discovery).
    bool hidden = false;

    std::string apiVersion() const { return group.empty() ? version : group + "/" + version; }
    // "pods", "networkpolicies.networking.k8s.io": how kubectl and Status messages name it.
    std::string groupResource() const { return group.empty() ? plural : plural + "." + group; }
    std::string basePath() const { return group.empty() ? "/api/" + version : "/apis/" + group + "/" + version; }
};

// Orders API versions as Kubernetes does: GA > beta > alpha, then by number, highest first.
// Negative when `a` is preferred over `b`.
int compareVersionPriority(std::string_view a, std::string_view b);

class Registry {
public:
    Registry();  // the built-in kinds

    // "group/version/plural/Kind[/namespaced|cluster]" (namespaced by default).
    host::Status addCrd(std::string_view spec);

    ResourceType* find(std::string_view group, std::string_view version, std::string_view plural);
    ResourceType* findKind(std::string_view apiVersion, std::string_view kind);
    // "pods", "networkpolicies.networking.k8s.io", or "networkpolicies" when unambiguous.
    ResourceType* findByName(std::string_view name);

    std::deque<ResourceType>& all() { return types_; }
    const std::deque<ResourceType>& all() const { return types_; }

    struct Group {
        std::string name;
        std::vector<std::string> versions;  // preferred first
    };
    // Groups with at least one visible kind (the core group excluded), in registration order.
    std::vector<Group> visibleGroups() const;
    bool visible(std::string_view group, std::string_view version) const;

private:
    std::deque<ResourceType> types_;  // deque: pointers stay valid as --crd kinds are added
};

}  // namespace knp::lab
