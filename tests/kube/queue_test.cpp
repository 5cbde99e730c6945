// The reflector → control-thread hand-off.
#include <poll.h>

#include <atomic>
#include <thread>

#include <doctest/doctest.h>

#include "kube/event_queue.hpp"

using namespace knp::host::kube;

namespace {

bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
}

WatchEvent event(uint32_t target, std::string name) {
    WatchEvent e;
    e.target = target;
    e.type = KNP_EVENT_ADDED;
    e.name = std::move(name);
    return e;
}

}  // namespace

TEST_CASE("queue: the eventfd is readable exactly while events are queued") {
    auto q = EventQueue::create(16);
    REQUIRE(q.ok());
    CHECK_FALSE(readable((*q)->fd()));
    REQUIRE((*q)->push(event(0, "a")));
    REQUIRE((*q)->push(event(1, "b")));
    CHECK(readable((*q)->fd()));
    std::vector<WatchEvent> out;
    CHECK((*q)->drain(out, 1) == 1);
    CHECK(readable((*q)->fd()));  // one left
    CHECK((*q)->drain(out) == 1);
    CHECK_FALSE(readable((*q)->fd()));
    REQUIRE(out.size() == 2);
    CHECK(out[0].name == "a");
    CHECK(out[1].name == "b");
    CHECK((*q)->drain(out) == 0);
}

TEST_CASE("queue: a full queue holds producers back until the consumer drains; close releases them") {
    auto q = EventQueue::create(2);
    REQUIRE(q.ok());
    EventQueue& queue = **q;
    std::atomic<int> pushed{0};
    std::thread producer([&] {
        for (int i = 0; i < 5; ++i) {
            if (!queue.push(event(0, std::to_string(i)))) return;
            ++pushed;
        }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(pushed.load() == 2);
    std::vector<WatchEvent> out;
    while (out.size() < 5) {
        queue.drain(out);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    producer.join();
    for (int i = 0; i < 5; ++i) CHECK(out[i].name == std::to_string(i));

    std::atomic<bool> refused{false};
    REQUIRE(queue.push(event(0, "x")));
    REQUIRE(queue.push(event(0, "y")));
    std::thread blocked([&] { refused = !queue.push(event(0, "z")); });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    queue.close();
    blocked.join();
    CHECK(refused.load());
    CHECK_FALSE(queue.push(event(0, "after")));
    out.clear();
    CHECK(queue.drain(out) == 2);  // what was queued stays drainable
}
