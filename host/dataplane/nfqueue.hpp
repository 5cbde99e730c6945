// One NFQUEUE queue read by one thread (libmnl + libnetfilter_queue's message helpers).
//
// The loop: block in poll → read every message waiting (one recv each, no copy beyond the
// headers the kernel sends) → parse → judge → append a verdict → send all verdicts of the
// round in one sendmsg, in arrival order. Accepts carry the conntrack label that lets the
// rest of the flow bypass userspace. Nothing in the loop allocates or locks.
//
// THREAD: start() and stop() from the control thread; the reader thread owns the socket.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include <knp/plugin_api.h>

#include "common/result.hpp"
#include "dataplane/packet.hpp"
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
    bool failOpen = true;              // F_FAIL_OPEN: accept when the queue or socket buffer is full
    uint32_t acceptMark = 0x10000000;  // see RulesetOptions::acceptMark
};

struct QueueStats {
    std::atomic<uint64_t> packets{0};
    std::atomic<uint64_t> accepted{0};
    std::atomic<uint64_t> denied{0};
    std::atomic<uint64_t> unparsable{0};
    std::atomic<uint64_t> receiveErrors{0};
};

class QueueReader {
public:
    // Binds the queue (fails if another process holds it) and configures it.
    static Result<std::unique_ptr<QueueReader>> open(const QueueOptions& options, unsigned index, PacketJudge& judge);
    ~QueueReader();

    void start();
    void stop();  // wakes the thread and joins it; the queue is unbound when the socket closes
    const QueueStats& stats() const noexcept { return stats_; }
    uint16_t num() const noexcept { return options_.num; }

private:
    QueueReader(const QueueOptions& options, unsigned index, PacketJudge& judge);
    void run() noexcept;
    void handle(const struct nlmsghdr* nlh, char*& out) noexcept;

    QueueOptions options_;
    unsigned index_;
    PacketJudge& judge_;
    sys::MnlSocket nl_;
    uint32_t portId_ = 0;
    sys::Fd wake_;  // eventfd: stop() writes it
    std::thread thread_;
    QueueStats stats_;
    std::vector<char> in_;
    std::vector<char> out_;
};

}  // namespace knp::host
