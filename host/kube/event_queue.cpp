#include "kube/event_queue.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace knp::host::kube {

Result<std::unique_ptr<EventQueue>> EventQueue::create(size_t capacity) {
    sys::Fd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!efd) return makeError("eventfd: {}", std::strerror(errno));
    return std::unique_ptr<EventQueue>(new EventQueue(std::move(efd), capacity == 0 ? 1 : capacity));
}

// The eventfd's counter is non-zero iff the queue is non-empty; both change under mu_.
void EventQueue::signalLocked() {
    if (signalled_) return;
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(efd_.get(), &one, sizeof one);
    signalled_ = true;
}

void EventQueue::clearLocked() {
    if (!signalled_) return;
    uint64_t v = 0;
    [[maybe_unused]] ssize_t n = ::read(efd_.get(), &v, sizeof v);
    signalled_ = false;
}

bool EventQueue::push(WatchEvent e) {
    std::unique_lock lock(mu_);
    notFull_.wait(lock, [&] { return closed_ || q_.size() < capacity_; });
    if (closed_) return false;
    q_.push_back(std::move(e));
    signalLocked();
    return true;
}

size_t EventQueue::drain(std::vector<WatchEvent>& out, size_t max) {
    std::lock_guard lock(mu_);
    size_t n = std::min(max, q_.size());
    for (size_t i = 0; i < n; ++i) {
        out.push_back(std::move(q_.front()));
        q_.pop_front();
    }
    if (q_.empty()) clearLocked();
    if (n > 0) notFull_.notify_all();
    return n;
}

void EventQueue::close() {
    {
        std::lock_guard lock(mu_);
        closed_ = true;
    }
    notFull_.notify_all();
}

size_t EventQueue::size() const {
    std::lock_guard lock(mu_);
    return q_.size();
}

}  // namespace knp::host::kube
