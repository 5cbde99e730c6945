// The host's Kubernetes watches: one Reflector per distinct target, all feeding one EventQueue
// that the control thread drains.
//
// Consumption (control thread):
//
//     auto wm = WatchManager::create(config);             // config: loadKubeconfig / inClusterConfig
//     uint32_t pods = *wm->addTarget({"", "v1", "pods", "Pod"});
//     uint32_t np = *wm->addTarget({"networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"});
//     wm->start();
//     poll({wm->eventFd(), POLLIN, ...} plus the loop's other descriptors);
//     std::vector<WatchEvent> batch;
//     wm->drain(batch);                                   // non-blocking, FIFO per target
//     for (auto& e : batch) ... e.target, e.type, e.json(), e.ns, e.name, e.resourceVersion
//
// Identical targets share one index and one stream (the host asks for its pods, namespaces and
// nodes, and every plugin watch, and fans each event out to the subscribers of that index).
// Per target, events come in order; after SYNCED the consumer holds the complete state of the
// target; RELIST precedes the differences a relist found (then SYNCED again).
//
// THREAD: create/addTarget/start/stop/drain/destruction on the control thread; eventFd(),
// health() and allSynced() from any thread. Each reflector runs on its own thread (a handful
// of targets; one blocking curl transfer each keeps the code straight-line); they share only
// the EventQueue and the TokenSource, both thread-safe. stop() interrupts transfers and
// backoff sleeps at once (curl_multi_wakeup) and joins the threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "common/result.hpp"
#include "kube/config.hpp"
#include "kube/event_queue.hpp"
#include "kube/http.hpp"
#include "kube/objects.hpp"
#include "kube/reflector.hpp"

namespace knp::host::kube {

struct WatchOptions {
    ReflectorOptions reflector;
    HttpOptions http;
    std::chrono::seconds tokenRefresh{60};  // re-read a token file this often (and after any 401)
    size_t maxQueuedEvents = 65536;         // producers wait beyond this (memory bound)
    size_t maxTargets = 256;                // distinct watches
};

class WatchManager {
public:
    static Result<std::unique_ptr<WatchManager>> create(ClusterConfig config, WatchOptions options = {});
    ~WatchManager();
    WatchManager(const WatchManager&) = delete;
    WatchManager& operator=(const WatchManager&) = delete;

    // Before start(). An identical target returns the index it already has.
    Result<uint32_t> addTarget(const WatchTarget& target);
    const std::vector<WatchTarget>& targets() const noexcept { return targets_; }

    // Starts one thread per target. Fails (and starts nothing) when a session cannot be made.
    Status start();
    // Idempotent; the destructor calls it. Events still queued stay drainable.
    void stop();

    // Readable while events are queued (level-triggered; drain() clears it when it empties
    // the queue).
    int eventFd() const noexcept { return queue_->fd(); }
    size_t drain(std::vector<WatchEvent>& out, size_t max = SIZE_MAX) { return queue_->drain(out, max); }

    // Every target has queued SYNCED at least once (a 404 target counts: see Reflector). Set
    // after the SYNCED is queued, so a drain() after seeing true returns everything up to it.
    // The control thread itself should rather count the SYNCED events it consumes: that is
    // readiness as the pod index and the plugins see it.
    bool allSynced() const;
    std::vector<TargetHealth> health() const;  // indexed like targets()
    const ClusterConfig& config() const noexcept { return config_; }

private:
    WatchManager(ClusterConfig config, WatchOptions options, std::unique_ptr<EventQueue> queue);

    ClusterConfig config_;
    WatchOptions options_;
    TokenSource tokens_;
    std::unique_ptr<EventQueue> queue_;
    std::vector<WatchTarget> targets_;
    std::atomic<bool> stop_{false};
    std::vector<std::unique_ptr<Reflector>> reflectors_;
    std::vector<std::thread> threads_;
    bool started_ = false;
};

}  // namespace knp::host::kube
