// The dataplane: the nftables ruleset, the NFQUEUE readers, and the view they judge packets
// by (pipeline snapshot + cluster snapshot), published without locks.
//
// Publication is quiescent-state based: readers announce the epoch they start a burst in and
// go "offline" when they block; a published view is freed (on the control thread, which is
// where plugin snapshots must be released) once every reader has passed the epoch it was
// replaced in. Readers never lock, allocate or touch a reference count.
//
// THREAD: create/start/publish/reclaim/stop on the control thread; the PacketJudge methods on
// the reader threads.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "cluster/cluster.hpp"
#include "dataplane/nfqueue.hpp"
#include "dataplane/ruleset.hpp"
#include "pipeline/pipeline.hpp"

namespace knp::host {

struct DataplaneOptions {
    RulesetOptions ruleset;     // queueNum/queueCount/bypass describe the queues below
    QueueOptions queue;         // num is the first queue; one reader per queue
    bool removeOnStop = false;  // fail-closed: delete the table on a clean shutdown
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
    // Stops the readers; fail-closed also removes the table. Rules stay otherwise, so an
    // upgrade or restart opens no gap (queue bypass lets traffic through meanwhile).
    Status stop();

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
    };

    DataplaneOptions options_;
    Ruleset ruleset_;
    std::atomic<const View*> view_{nullptr};
    std::atomic<uint64_t> epoch_{1};
    std::unique_ptr<Slot[]> slots_;
    std::vector<std::pair<const View*, uint64_t>> retired_;
    std::vector<std::unique_ptr<QueueReader>> readers_;
};

}  // namespace knp::host
