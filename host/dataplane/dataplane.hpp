// The dataplane: the nftables ruleset, the NFQUEUE readers, and the view they judge packets
// by (pipeline snapshot + cluster snapshot), published without locks.
//
// Publication is quiescent-state based: readers announce the epoch they start a burst in and
// go "offline" when they block; a published view is freed (on the control thread, which is
// where plugin snapshots must be released) once every reader has passed the epoch it was
// replaced in. Readers never lock, allocate or touch a reference count.
//
// Besides the readers, one more party may hold a view: an observer (the ops thread answering
// explain, status or a scrape) gets its own quiescent-state slot, so it reads a view exactly as
// a reader does and never frees one. Freeing stays on the control thread.
//
// THREAD: create/start/publish/reclaim/stop on the control thread; the PacketJudge methods on
// the reader threads; observe() and the statistics from any other thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "cluster/cluster.hpp"
#include "dataplane/nfqueue.hpp"
#include "dataplane/ruleset.hpp"
#include "pipeline/pipeline.hpp"

namespace knp::host {

struct PacketVerdict;

struct DataplaneOptions {
    RulesetOptions ruleset;     // queueNum/queueCount/bypass describe the queues below
    QueueOptions queue;         // one reader per queue; num and acceptMark come from ruleset
    bool removeOnStop = false;  // fail-closed: delete the table on a clean shutdown
    // stop(): how long the readers may take to answer the packets already queued.
    std::chrono::milliseconds drainTimeout{2000};
};

// Ruleset applies as publish() sees them. Written on the control thread, read anywhere.
struct RulesetStats {
    // Apply latency buckets, in nanoseconds (exposed in seconds).
    static constexpr std::array<uint64_t, 12> kBoundsNs{100000,   250000,   500000,   1000000,   2500000,   5000000,
                                                        10000000, 25000000, 50000000, 100000000, 250000000, 1000000000};
    SingleWriterHistogram<kBoundsNs.size()> latency;  // successful applies
    SingleWriterCounter failures;
    SingleWriterCounter transactions;  // mirrors Ruleset::transactions()
    SingleWriterCounter fullLoads;     // mirrors Ruleset::fullLoads()
    std::atomic<uint64_t> lastSuccessUnixNs{0};
};

class Dataplane final : public PacketJudge {
public:
    Dataplane(DataplaneOptions options, QueueMethod method);
    ~Dataplane() override;

    // Binds every queue and starts its reader. Packets judged before the first publish()
    // get the fail-open/fail-closed default.
    Status start();
    // Makes `pipeline`/`cluster` the view readers judge by, then brings the kernel's sets in
    // line with the snapshots' interests (set deltas, one transaction).
    Status publish(std::shared_ptr<const PipelineSnapshot> pipeline, std::shared_ptr<const ClusterSnapshot> cluster);
    // Frees views no reader can still see. Call periodically.
    void reclaim();
    // Drains the queues (every packet already queued gets its verdict, within drainTimeout;
    // see QueueReader), stops the readers, then fail-closed removes the table. Rules stay
    // otherwise, so an upgrade or restart opens no gap (queue bypass lets traffic through
    // meanwhile). Table removal comes last because unregistering a hook makes the kernel drop
    // every packet still queued in the namespace.
    Status stop();

    // The publication count: each publish() advances it. With reclaimedThrough() it tells when
    // nothing published up to then can still be seen: the owner of what those views reference
    // (a replaced Pipeline, whose instances release their snapshots) may then go.
    uint64_t epoch() const noexcept { return epoch_.load(); }
    // Every view replaced at or before `epoch` has been freed. Control thread.
    bool reclaimedThrough(uint64_t epoch) const noexcept { return retired_.empty() || retired_.front().second > epoch; }

    // Runs `fn` against the current view (nullptrs before the first publish) while holding it
    // through the observer slot: valid for the call, freed later by the control thread. Keep
    // `fn` short; it delays reclamation, never a reader. Not from a reader thread; observers
    // take turns.
    void observe(const std::function<void(const PipelineSnapshot*, const ClusterSnapshot*)>& fn) const;

    const DataplaneOptions& options() const noexcept { return options_; }
    const RulesetStats& rulesetStats() const noexcept { return rulesetStats_; }
    // Control thread only (the Ruleset is not thread-safe); use options() elsewhere.
    const Ruleset& ruleset() const noexcept { return ruleset_; }
    const std::vector<std::unique_ptr<QueueReader>>& readers() const noexcept { return readers_; }
    size_t retired() const noexcept { return retired_.size(); }

    // PacketJudge
    void begin(unsigned reader) noexcept override;
    bool accept(unsigned reader, const knp_packet& packet) noexcept override;
    void done(unsigned reader) noexcept override;

private:
    struct View {
        std::shared_ptr<const PipelineSnapshot> pipeline;
        std::shared_ptr<const ClusterSnapshot> cluster;
    };
    static constexpr uint64_t kOffline = UINT64_MAX;
    struct alignas(64) Slot {
        std::atomic<uint64_t> seen{kOffline};
        const View* view = nullptr;  // reader-owned during a burst
        // Per-packet decision logging (-v=5): a token bucket, reader-owned.
        double logTokens = 0;
        uint64_t logRefillNs = 0;
        uint64_t logSuppressed = 0;
    };
    unsigned observerSlot() const noexcept { return options_.ruleset.queueCount; }
    void logDecision(unsigned reader, const knp_packet& packet, const PacketVerdict& verdict) noexcept;

    DataplaneOptions options_;
    Ruleset ruleset_;
    std::atomic<const View*> view_{nullptr};
    std::atomic<uint64_t> epoch_{1};
    std::unique_ptr<Slot[]> slots_;     // one per reader, then the observer's
    mutable std::mutex observerMutex_;  // observers only; readers never take it
    RulesetStats rulesetStats_;
    std::vector<std::pair<const View*, uint64_t>> retired_;
    std::vector<std::unique_ptr<QueueReader>> readers_;
};

}  // namespace knp::host
