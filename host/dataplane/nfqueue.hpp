// One NFQUEUE queue read by one thread (libmnl + libnetfilter_queue's message helpers).
//
// The loop: block in poll → read every message waiting (one recv each, no copy beyond the
// headers the kernel sends) → parse → judge → append a verdict → send all verdicts of the
// round in one sendmsg, in arrival order. Accepts carry the conntrack label that lets the
// rest of the flow bypass userspace. Nothing in the loop allocates or locks.
//
// Drain (a clean shutdown): the reader tells the kernel to queue nothing more for it (queue
// length 0 with F_FAIL_OPEN: the kernel accepts new packets itself), which leaves a finite
// backlog, all of it already in the socket (the kernel sends each packet's message under the
// queue lock as it queues it). The reader answers that backlog, then stops. Closing a queue's
// socket or unregistering a hook (deleting the table) makes the kernel drop whatever is still
// queued, so a drained queue is the only kind that is safe to close under traffic. The
// packets the kernel accepts meanwhile are what any shutdown lets through: fail-open leaves
// rules with bypass, fail-closed deletes the table right after.
//
// THREAD: start(), drain() and stop() from the control thread; the reader thread owns the
// socket.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

#include <knp/plugin_api.h>

#include "common/result.hpp"
#include "dataplane/packet.hpp"
#include "ops/counters.hpp"
#include "sys/handles.hpp"

namespace knp::host {

// Decides packets for the readers. THREAD: called concurrently from every reader thread;
// must not block or allocate.
class PacketJudge {
public:
    virtual ~PacketJudge() = default;
    // A reader is about to judge a burst of packets; it holds whatever it reads until done().
    virtual void begin(unsigned reader) noexcept = 0;
    virtual bool accept(unsigned reader, const knp_packet& packet) noexcept = 0;
    virtual void done(unsigned reader) noexcept = 0;
};

struct QueueOptions {
    uint16_t num = 100;
    uint32_t maxLen = 4096;
    // Enough for IPv4 with options or IPv6 with extension headers, plus the L4 ports.
    uint32_t copyRange = 512;
    bool failOpen = true;     // F_FAIL_OPEN: accept when the queue or socket buffer is full
    uint32_t acceptMark = 0;  // Dataplane sets it from RulesetOptions::acceptMark (one source)
};

struct QueueStats {
    std::atomic<uint64_t> packets{0};
    std::atomic<uint64_t> accepted{0};
    std::atomic<uint64_t> denied{0};
    std::atomic<uint64_t> unparsable{0};
    std::atomic<uint64_t> receiveErrors{0};
};

// The upstream per-packet metrics (kube_network_policies_packet_*) of one reader: processing
// time (parse + judge) by protocol and family, packets by verdict, and the most recent times
// for the summary's quantiles. Written by the reader thread only (see ops/counters.hpp).
class PacketMetrics {
public:
    static constexpr std::array<std::string_view, 6> kProtocols{"TCP", "UDP", "SCTP", "ICMP", "ICMPv6", "OTHER"};
    static constexpr std::array<std::string_view, 2> kFamilies{"IPv4", "IPv6"};
    // Upstream's buckets, in microseconds (an observation is bucketed by whole microseconds,
    // as upstream does; the sum keeps nanoseconds).
    static constexpr std::array<uint64_t, 11> kBoundsUs{1, 10, 50, 200, 500, 750, 1000, 2000, 5000, 10000, 100000};
    static constexpr size_t kRecent = 4096;
    using Histogram = SingleWriterHistogram<kBoundsUs.size()>;

    static size_t protocolIndex(uint8_t protocol) noexcept;
    void record(uint8_t protocol, uint8_t family, bool accept, uint64_t ns) noexcept;

    const Histogram& time(size_t protocol, size_t family) const noexcept { return time_[protocol][family]; }
    uint64_t packets(size_t protocol, size_t family, bool accept) const noexcept {
        return packets_[protocol][family][accept ? 1 : 0].get();
    }
    const SingleWriterReservoir<kRecent>& recentNs() const noexcept { return recent_; }

private:
    Histogram time_[kProtocols.size()][kFamilies.size()];
    SingleWriterCounter packets_[kProtocols.size()][kFamilies.size()][2];
    SingleWriterReservoir<kRecent> recent_;
};

class QueueReader {
public:
    // Binds the queue (fails if another process holds it) and configures it.
    static Result<std::unique_ptr<QueueReader>> open(const QueueOptions& options, unsigned index, PacketJudge& judge);
    ~QueueReader();

    void start();
    // Asks the reader to drain (see above) and returns at once; stop() then waits for it. The
    // reader gives up at `deadlineNs` (monotonicNowNs() clock) if packets keep coming.
    void drain(uint64_t deadlineNs) noexcept;
    // Wakes the thread and joins it (after the drain, if one was asked for); the queue is
    // unbound when the socket closes.
    void stop();
    // Packets answered during the drain (after the kernel stopped queueing for us).
    uint64_t drained() const noexcept { return drained_.load(std::memory_order_relaxed); }
    const QueueStats& stats() const noexcept { return stats_; }
    const PacketMetrics& packetMetrics() const noexcept { return metrics_; }
    uint16_t num() const noexcept { return options_.num; }

private:
    QueueReader(const QueueOptions& options, unsigned index, PacketJudge& judge);
    void run() noexcept;
    // Reads and answers what is waiting (at most `rounds` receives); the receives that had data.
    int readBurst(char*& out, int rounds) noexcept;
    void runDrain(char*& out) noexcept;
    void flushVerdicts(char*& out) noexcept;
    void handle(const struct nlmsghdr* nlh, char*& out) noexcept;

    QueueOptions options_;
    unsigned index_;
    PacketJudge& judge_;
    sys::MnlSocket nl_;
    uint32_t portId_ = 0;
    sys::Fd wake_;                              // eventfd: drain() and stop() write it
    std::atomic<uint64_t> drainDeadlineNs_{0};  // 0: stop without draining
    std::atomic<uint64_t> drained_{0};
    std::thread thread_;
    QueueStats stats_;
    PacketMetrics metrics_;
    std::vector<char> in_;
    std::vector<char> out_;
};

}  // namespace knp::host
