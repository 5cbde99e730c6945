// The in-memory object store: objects of every kind, one monotonic resourceVersion across all
// kinds (as etcd's revision), a bounded event history for watches and exact-version reads, and
// the admission the real API server does (names, defaulting, uid, timestamps, generation,
// optimistic concurrency, namespace existence).
//
// THREAD: thread-bound to the server's io_context thread. Every write publishes its event to
// the sink synchronously, so a watch registered on that thread never misses or repeats one.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "objects.hpp"
#include "resources.hpp"
#include "selectors.hpp"

namespace knp::lab {

enum class EventType { Added, Modified, Deleted };
const char* eventTypeName(EventType t);

struct Event {
    EventType type;
    std::uint64_t rv;
    const ResourceType* rt;
    ObjectPtr object;    // the state after the event; for DELETED the last state, at the deletion's RV
    ObjectPtr previous;  // the state before (null for ADDED)
};

class EventSink {
public:
    virtual ~EventSink() = default;
    virtual void publish(const Event& e) = 0;
};

struct WriteOptions {
    bool dryRun = false;
    std::string fieldManager;  // "" → "unknown"
    bool force = false;        // server-side apply; accepted, there are no conflicts to force
};

enum class PatchType { Json, Merge, Strategic, Apply };

struct ListOptions {
    std::string resourceVersion;
    std::string resourceVersionMatch;
    std::int64_t limit = 0;
    std::string continueToken;
    LabelSelector labels;
    FieldSelector fields;
};

struct ListResult {
    std::vector<ObjectPtr> items;
    std::uint64_t rv = 0;
    std::string continueToken;
    std::optional<std::int64_t> remainingItemCount;
};

class Store {
public:
    // historyLimit: events kept for watches from an old resourceVersion and for exact reads
    // (the API server's watch cache and etcd compaction window, in events rather than time).
    Store(Registry& registry, std::size_t historyLimit);

    void setSink(EventSink* sink) { sink_ = sink; }
    // Namespaces every cluster has (default, kube-system, kube-public, kube-node-lease).
    void createSystemNamespaces();

    std::uint64_t resourceVersion() const { return rv_; }
    // Watches and exact reads from a resourceVersion below this get 410 Gone.
    std::uint64_t oldestResourceVersion() const { return oldest_; }
    // Drops the whole event history, as a compaction would: only the current state remains.
    void expireHistory();
    std::size_t objectCount() const;

    ApiResult<ObjectPtr> get(const ResourceType& rt, std::string_view ns, std::string_view name) const;
    ApiResult<ListResult> list(const ResourceType& rt, std::string_view ns, const ListOptions& opts) const;
    ApiResult<ObjectPtr> create(const ResourceType& rt, std::string_view ns, json::object body,
                                const WriteOptions& opts);
    // statusOnly: the status subresource (only .status is taken from the body).
    ApiResult<ObjectPtr> update(const ResourceType& rt, std::string_view ns, std::string_view name, json::object body,
                                const WriteOptions& opts, bool statusOnly);
    ApiResult<ObjectPtr> patch(const ResourceType& rt, std::string_view ns, std::string_view name, PatchType type,
                               const json::value& patch, const WriteOptions& opts, bool statusOnly);
    ApiResult<ObjectPtr> remove(const ResourceType& rt, std::string_view ns, std::string_view name,
                                const json::object& deleteOptions, const WriteOptions& opts);
    // Creates, or replaces unconditionally: the bulk loader (--load, POST /lab/load).
    ApiResult<ObjectPtr> upsert(const ResourceType& rt, json::object body);

    // Events of `rt` after `rv`, oldest first; 410 when `rv` is older than the history.
    ApiResult<std::vector<Event>> eventsSince(const ResourceType& rt, std::uint64_t rv) const;
    // Current objects of `rt` (in namespace `ns`, or all when ""), in key order.
    std::vector<ObjectPtr> snapshot(const ResourceType& rt, std::string_view ns) const;

    static ApiError notFound(const ResourceType& rt, std::string_view name);
    static ApiError gone(std::string message);

private:
    using ObjectMap = std::map<std::string, ObjectPtr>;  // "ns/name" or "name": etcd's key order

    static std::string key(const ResourceType& rt, std::string_view ns, std::string_view name);
    ObjectMap& objects(const ResourceType& rt) { return objects_[&rt]; }
    const ObjectMap* objectsOf(const ResourceType& rt) const;
    bool namespaceExists(std::string_view ns) const;

    ApiResult<json::object> admitCreate(const ResourceType& rt, std::string_view ns, json::object body,
                                        const WriteOptions& opts, std::string_view operation);
    ApiResult<ObjectPtr> commitUpdate(const ResourceType& rt, const ObjectPtr& old, json::object next,
                                      const WriteOptions& opts, std::string_view operation, bool statusOnly);
    ObjectPtr commitDelete(const ResourceType& rt, const std::string& k, const ObjectPtr& old);
    void record(EventType type, const ResourceType& rt, ObjectPtr object, ObjectPtr previous);

    Registry& registry_;
    std::unordered_map<const ResourceType*, ObjectMap> objects_;
    std::deque<Event> history_;
    std::size_t historyLimit_;
    std::uint64_t rv_ = 0;
    std::uint64_t oldest_ = 0;
    EventSink* sink_ = nullptr;
};

}  // namespace knp::lab
