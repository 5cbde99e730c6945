// Watch fan-out: every committed event goes to each registered watch whose filter selects it.
// THREAD: thread-bound to the io_context thread, like the Store that publishes into it. Sinks are
// called synchronously and must only queue (never block); a sink may remove itself from within
// a call.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "store.hpp"

namespace knp::lab {

struct WatchFilter {
    const ResourceType* rt = nullptr;
    std::string ns;  // "" for every namespace
    LabelSelector labels;
    FieldSelector fields;

    bool matches(const json::object& obj) const;
    // What a watch with this filter reports for `e`: with selectors, an object that stops
    // matching is DELETED and one that starts matching is ADDED, as the API server does.
    std::optional<EventType> apply(const Event& e) const;
};

// What the admin API (and the server itself) can make an open stream do.
enum class StreamSignal {
    Cut,       // fault: end the connection in the middle of a chunk
    Stall,     // fault: keep the connection open and send nothing more, ever
    Close,     // end the stream cleanly (the resource disappeared, the server is stopping)
    Bookmark,  // send a BOOKMARK now, if the watch asked for bookmarks
};

class WatchSink {
public:
    virtual ~WatchSink() = default;
    virtual void deliver(EventType type, const ObjectPtr& object) = 0;
    virtual void signal(StreamSignal s) = 0;
};

class WatchHub : public EventSink {
public:
    explicit WatchHub(std::size_t maxWatchers) : max_(maxWatchers) {}

    // Limit on concurrent watches: each holds a connection and a queue.
    bool full() const { return entries_.size() >= max_; }
    std::uint64_t add(WatchFilter filter, WatchSink* sink);
    void remove(std::uint64_t id) { entries_.erase(id); }

    void publish(const Event& e) override;
    // Applies `f` to every watch of `rt` (all watches when null); returns how many.
    std::size_t signal(const ResourceType* rt, StreamSignal f);
    std::size_t count(const ResourceType* rt) const;

    struct Info {
        const ResourceType* rt;
        std::string ns;
    };
    std::map<std::uint64_t, Info> list() const;

private:
    struct Entry {
        WatchFilter filter;
        WatchSink* sink;
    };
    std::map<std::uint64_t, Entry> entries_;
    std::uint64_t next_ = 1;
    std::size_t max_;
};

}  // namespace knp::lab
