// What the kernel reports about knpd's queues and process, read at scrape or status time.
//
// THREAD: pure functions and file reads; any thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace knp::host {

// One line of /proc/net/netfilter/nfnetlink_queue (see proc(5)).
struct NfqueueProcStats {
    uint32_t queue = 0;
    uint32_t portId = 0;
    uint64_t waiting = 0;       // queue_total: packets waiting for a verdict
    uint64_t queueDropped = 0;  // dropped: the queue was full
    uint64_t userDropped = 0;   // dropped: the netlink socket buffer was full
    uint64_t idSequence = 0;    // id of the last packet queued
};

// Parses the file's text; malformed lines are skipped.
std::vector<NfqueueProcStats> parseNfqueueProc(std::string_view text);
// Reads it in the caller's network namespace; empty when no queue is bound (or no file).
std::vector<NfqueueProcStats> readNfqueueProc();

struct ProcessStats {
    double cpuSeconds = 0;
    uint64_t residentBytes = 0;
    uint64_t virtualBytes = 0;
    double startTimeSeconds = 0;  // since the epoch
    uint64_t openFds = 0;
    uint64_t maxFds = 0;
    bool ok = false;
};
ProcessStats readProcessStats();

}  // namespace knp::host
