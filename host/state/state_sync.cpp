#include "state/state_sync.hpp"

#include <boost/json.hpp>

#include "common/log.hpp"

namespace knp::host {

namespace json = boost::json;

Result<StateSync::Outcome> StateSync::sync(const std::vector<StateObject>& objects) {
    // Validate first, on a copy of the pod index, so a bad file changes nothing.
    std::map<Key, const StateObject*> next;
    for (const StateObject& o : objects) {
        if (!next.emplace(Key{o.apiVersion, o.kind, o.ns, o.name}, &o).second)
            return makeError("{}: duplicate {} {}{}", o.where(), o.kind, o.ns.empty() ? "" : o.ns + "/", o.name);
    }
    ClusterState cluster = cluster_;
    Outcome out;
    struct Event {
        uint32_t type;
        const Key* key;
        std::string json;
    };
    std::vector<Event> events;
    for (const auto& [key, o] : next) {
        std::string js = json::serialize(o->object);
        auto it = last_.find(key);
        if (it != last_.end() && it->second == js) continue;
        uint32_t type = it == last_.end() ? KNP_EVENT_ADDED : KNP_EVENT_MODIFIED;
        if (auto core = coreKindOf(o->apiVersion, o->kind)) {
            if (auto s = cluster.apply(type, *core, o->object); !s)
                return std::move(s).error().withContext(o->where() + ": ");
            out.podsChanged = true;
        }
        events.push_back({type, &key, std::move(js)});
    }
    for (const auto& [key, js] : last_) {
        if (next.count(key)) continue;
        if (auto core = coreKindOf(std::get<0>(key), std::get<1>(key))) {
            (void)cluster.apply(KNP_EVENT_DELETED, *core, json::parse(js).as_object());
            out.podsChanged = true;
        }
        events.push_back({KNP_EVENT_DELETED, &key, js});
    }

    // Deliver to every watch that selects the object's kind (and namespace).
    const auto& watches = pipeline_.watches();
    for (const Event& e : events) {
        const auto& [apiVersion, kind, ns, name] = *e.key;
        bool delivered = false;
        for (size_t w = 0; w < watches.size(); ++w) {
            const WatchSpec& ws = watches[w];
            if (ws.apiVersion() != apiVersion || ws.kind != kind) continue;
            if (!ws.watchNamespace.empty() && ws.watchNamespace != ns) continue;
            pipeline_.queueEvent(w, e.type, e.json, ns, name);
            delivered = true;
        }
        if (!delivered && !coreKindOf(apiVersion, kind) && e.type == KNP_EVENT_ADDED) {
            auto it = next.find(*e.key);
            logf(LogLevel::Warning, "{}: {} {} ({}): no plugin in the pipeline watches this kind; ignored",
                 it != next.end() ? it->second->where() : "state", kind, name, apiVersion);
        }
    }
    if (!synced_)
        for (size_t w = 0; w < watches.size(); ++w) pipeline_.queueEvent(w, KNP_EVENT_SYNCED, "", "", "");

    cluster_ = std::move(cluster);
    std::map<Key, std::string> last;
    for (const auto& [key, o] : next) last.emplace(key, json::serialize(o->object));
    last_ = std::move(last);
    out.events = events.size();
    out.cluster = cluster_.build(localNode_);
    out.errors = pipeline_.flush(out.podsChanged || !synced_ ? KNP_UPDATE_PODS_CHANGED : 0, *out.cluster);
    synced_ = true;
    return out;
}

}  // namespace knp::host
