// The hand-off from reflector threads to the control thread: a bounded FIFO of WatchEvents and
// an eventfd that is readable exactly while the queue is not empty, so the control loop can
// poll() it next to its other descriptors.
//
// THREAD: thread-safe. push() may block (the queue is full: the control thread is behind), which
// throttles the producing stream through TCP flow control instead of growing memory without
// bound; close() releases every blocked producer.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "common/result.hpp"
#include "kube/objects.hpp"
#include "sys/handles.hpp"

namespace knp::host::kube {

class EventQueue {
public:
    static Result<std::unique_ptr<EventQueue>> create(size_t capacity);

    // Appends `e`, waiting while the queue is full; false once closed (the event is dropped).
    bool push(WatchEvent e);
    // Moves up to `max` events into `out` (appending) without waiting; returns how many.
    size_t drain(std::vector<WatchEvent>& out, size_t max = SIZE_MAX);
    // Wakes and refuses every producer from now on.
    void close();

    int fd() const noexcept { return efd_.get(); }
    size_t size() const;

private:
    EventQueue(sys::Fd efd, size_t capacity) : efd_(std::move(efd)), capacity_(capacity) {}
    void signalLocked();
    void clearLocked();

    sys::Fd efd_;
    const size_t capacity_;
    mutable std::mutex mu_;
    std::condition_variable notFull_;
    std::deque<WatchEvent> q_;
    bool closed_ = false;
    bool signalled_ = false;
};

}  // namespace knp::host::kube
