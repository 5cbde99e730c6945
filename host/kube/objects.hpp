// What the watch client watches and what it delivers: watch targets, the event type handed to
// the control thread, object decoding (managedFields stripped), and the per-target cache that
// turns list/watch results into exactly-once ADDED/MODIFIED/DELETED (mark and sweep on relist).
//
// THREAD: WatchTarget and WatchEvent are values. ObjectCache is thread-bound (its reflector).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/json/object.hpp>
#include <knp/plugin_api.h>

#include "common/result.hpp"

namespace knp::host::kube {

// One distinct list/watch: a resource, optionally a namespace and selectors. Mirrors the
// plugin ABI's knp_watch (and the host's WatchSpec), so a plugin's watch maps 1:1.
struct WatchTarget {
    std::string group;     // "" = core
    std::string version;   // "v1"
    std::string resource;  // plural, lower case
    std::string kind;      // "NetworkPolicy"; fills in list items that arrive without one
    std::string ns;        // "" = all namespaces
    std::string labelSelector, fieldSelector;

    bool operator==(const WatchTarget&) const = default;
    std::string apiVersion() const { return group.empty() ? version : group + "/" + version; }
    // "networking.k8s.io/v1/networkpolicies", then ` ns="x"`, ` labels="..."`, ` fields="..."`.
    std::string describe() const;
    // The collection's path below the server URL: /api/v1/pods, /apis/G/V/namespaces/N/R.
    std::string path() const;
    // "group/version/resource" or "version/resource" (core), as knp-kube-watch takes it.
    static Result<WatchTarget> parse(std::string_view gvr);
};

// What the control thread receives. `object` is the JSON the API server sent with
// metadata.managedFields removed (list items also get the apiVersion and kind the API server
// leaves out of them); it is shared, not copied, between the client's cache and every
// consumer. For SYNCED and RELIST only `target` and `type` are set.
struct WatchEvent {
    uint32_t target = 0;  // index returned by WatchManager::addTarget
    uint32_t type = 0;    // KNP_EVENT_ADDED/MODIFIED/DELETED/SYNCED/RELIST
    std::shared_ptr<const std::string> object;
    std::string ns, name, resourceVersion;

    std::string_view json() const noexcept { return object ? std::string_view(*object) : std::string_view(); }
};

const char* eventTypeName(uint32_t type) noexcept;

// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass).
std::string queryEscape(std::string_view s);

// Removes metadata.managedFields (field-manager bookkeeping no consumer needs; often half an
// object's size). Returns whether there was any.
bool stripManagedFields(boost::json::object& object);

// An object ready to cache and deliver.
struct DecodedObject {
    std::string ns, name, resourceVersion;
    std::shared_ptr<const std::string> json;
    // With ObjectRetention::Metadata: apiVersion, kind and metadata only (what the cache keeps).
    std::shared_ptr<const std::string> tombstone;
};

// What the cache keeps of each object, i.e. what a DELETED found by a relist carries.
enum class ObjectRetention {
    Full,      // the whole last known state (as the ABI promises): ~the objects' JSON size
    Metadata,  // apiVersion, kind, metadata without managedFields and annotations: a few hundred
               // bytes an object, for a consumer that keys deletions by namespace/name
};

// Strips managedFields, fills apiVersion/kind when missing (list items), serializes. An
// object without metadata.name is an error.
Result<DecodedObject> decodeObject(boost::json::object& object, std::string_view apiVersion, std::string_view kind,
                                   ObjectRetention retention = ObjectRetention::Full);

// The objects of one target as last delivered, keyed by namespace/name, with their
// resourceVersion: an event whose object the consumer already has (same resourceVersion) is
// dropped, an ADDED for a known object becomes MODIFIED, a MODIFIED for an unknown one ADDED,
// a DELETED for an unknown one is dropped. So after any sequence of relists and resumed
// watches the consumer has seen each change once, in order.
class ObjectCache {
public:
    explicit ObjectCache(ObjectRetention retention = ObjectRetention::Full) : retention_(retention) {}

    // A watch event (ADDED/MODIFIED/DELETED); the event to deliver, if any.
    std::optional<WatchEvent> apply(uint32_t type, DecodedObject object);

    // Relist: beginRelist(), listed() for every object of the new list (the events to deliver
    // as they come), then sweep(): DELETED (with its last known state) for every cached
    // object the list did not contain — deletions that happened while the watch was down.
    void beginRelist() noexcept { ++generation_; }
    std::optional<WatchEvent> listed(DecodedObject object);
    std::vector<WatchEvent> sweep();

    size_t size() const noexcept { return objects_.size(); }
    bool contains(std::string_view ns, std::string_view name) const;

private:
    struct Entry {
        std::string resourceVersion;
        std::shared_ptr<const std::string> json;
        uint64_t generation = 0;
    };
    static std::string key(std::string_view ns, std::string_view name);
    WatchEvent upsert(uint32_t type, DecodedObject& o, Entry& e);
    std::unordered_map<std::string, Entry> objects_;  // "ns/name" (cluster-scoped: "/name")
    uint64_t generation_ = 0;
    ObjectRetention retention_;
};

}  // namespace knp::host::kube
