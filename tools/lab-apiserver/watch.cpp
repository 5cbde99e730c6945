#include "watch.hpp"

#include <vector>

namespace knp::lab {

bool WatchFilter::matches(const json::object& obj) const {
    if (!ns.empty() && metaString(obj, "namespace") != ns) return false;
    return labels.matches(obj) && fields.matches(obj);
}

std::optional<EventType> WatchFilter::apply(const Event& e) const {
    if (e.rt != rt) return std::nullopt;
    bool now = matches(e.object->value);
    bool before = e.previous && matches(e.previous->value);
    switch (e.type) {
        case EventType::Added:
            return now ? std::optional(EventType::Added) : std::nullopt;
        case EventType::Deleted:
            return before || now ? std::optional(EventType::Deleted) : std::nullopt;
        case EventType::Modified:
            if (now && before) return EventType::Modified;
            if (now) return EventType::Added;
            if (before) return EventType::Deleted;
            return std::nullopt;
    }
    return std::nullopt;
}

std::uint64_t WatchHub::add(WatchFilter filter, WatchSink* sink) {
    std::uint64_t id = next_++;
    entries_.emplace(id, Entry{std::move(filter), sink});
    return id;
}

void WatchHub::publish(const Event& e) {
    // Ids first: a sink whose queue overflows removes itself during delivery.
    std::vector<std::uint64_t> ids;
    for (const auto& [id, entry] : entries_)
        if (entry.filter.rt == e.rt) ids.push_back(id);
    for (auto id : ids) {
        auto it = entries_.find(id);
        if (it == entries_.end()) continue;
        if (auto type = it->second.filter.apply(e)) it->second.sink->deliver(*type, e.object);
    }
}

std::size_t WatchHub::signal(const ResourceType* rt, StreamSignal f) {
    std::vector<std::uint64_t> ids;
    for (const auto& [id, entry] : entries_)
        if (!rt || entry.filter.rt == rt) ids.push_back(id);
    std::size_t n = 0;
    for (auto id : ids) {
        auto it = entries_.find(id);
        if (it == entries_.end()) continue;
        it->second.sink->signal(f);
        ++n;
    }
    return n;
}

std::size_t WatchHub::count(const ResourceType* rt) const {
    std::size_t n = 0;
    for (const auto& [id, entry] : entries_)
        if (!rt || entry.filter.rt == rt) ++n;
    return n;
}

std::map<std::uint64_t, WatchHub::Info> WatchHub::list() const {
    std::map<std::uint64_t, Info> out;
    for (const auto& [id, entry] : entries_) out.emplace(id, Info{entry.filter.rt, entry.filter.ns});
    return out;
}

}  // namespace knp::lab
