#include "dataplane/nfqueue.hpp"

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

extern "C" {
#include <libnetfilter_queue/libnetfilter_queue.h>
}

#include "common/log.hpp"

namespace knp::host {

namespace {

// Room for one verdict message with its conntrack label attributes.
constexpr size_t kVerdictRoom = 128;

Status sendConfig(mnl_socket* nl, nlmsghdr* nlh, const char* what) {
    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) return makeError("nfqueue: {}: {}", what, std::strerror(errno));
    char buf[MNL_SOCKET_BUFFER_SIZE];
    ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof buf);
    if (n < 0) return makeError("nfqueue: {}: {}", what, std::strerror(errno));
    if (mnl_cb_run(buf, static_cast<size_t>(n), nlh->nlmsg_seq, mnl_socket_get_portid(nl), nullptr, nullptr) < 0)
        return makeError("nfqueue: {}: {}", what, std::strerror(errno));
    return okStatus();
}

}  // namespace

size_t PacketMetrics::protocolIndex(uint8_t protocol) noexcept {
    // Positions in kProtocols by IP protocol number; everything else is OTHER.
    static constexpr auto kIndex = [] {
        std::array<uint8_t, 256> t{};
        t.fill(5);
        t[KNP_PROTO_TCP] = 0;
        t[KNP_PROTO_UDP] = 1;
        t[KNP_PROTO_SCTP] = 2;
        t[KNP_PROTO_ICMP] = 3;
        t[KNP_PROTO_ICMPV6] = 4;
        return t;
    }();
    return kIndex[protocol];
}

void PacketMetrics::record(uint8_t protocol, uint8_t family, bool accept, uint64_t ns) noexcept {
    size_t p = protocolIndex(protocol);
    size_t f = family == KNP_FAMILY_IPV6 ? 1 : 0;
    time_[p][f].observe(kBoundsUs, ns / 1000, ns);
    packets_[p][f][accept ? 1 : 0].add();
    recent_.record(ns > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(ns));
}

QueueReader::QueueReader(const QueueOptions& options, unsigned index, PacketJudge& judge)
    : options_(options), index_(index), judge_(judge) {}

Result<std::unique_ptr<QueueReader>> QueueReader::open(const QueueOptions& options, unsigned index,
                                                       PacketJudge& judge) {
    std::unique_ptr<QueueReader> r(new QueueReader(options, index, judge));
    r->nl_.reset(mnl_socket_open(NETLINK_NETFILTER));
    if (!r->nl_) return makeError("nfqueue {}: cannot open a netlink socket: {}", options.num, std::strerror(errno));
    if (mnl_socket_bind(r->nl_.get(), 0, MNL_SOCKET_AUTOPID) < 0)
        return makeError("nfqueue {}: bind: {}", options.num, std::strerror(errno));
    r->portId_ = mnl_socket_get_portid(r->nl_.get());
    int fd = mnl_socket_get_fd(r->nl_.get());

    // The buffer must hold a full queue of copied headers; otherwise the kernel drops (or,
    // fail-open, accepts) packets it cannot deliver. FORCE: not capped by rmem_max (root).
    int rcvbuf = static_cast<int>(options.maxLen * (options.copyRange + 256));
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    // nfnetlink_queue has no resync: a reported overflow carries no information, so don't.
    int one = 1;
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);

    char buf[MNL_SOCKET_BUFFER_SIZE];
    nlmsghdr* nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, options.num);
    nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
    nlh->nlmsg_flags |= NLM_F_ACK;
    if (auto s = sendConfig(r->nl_.get(), nlh,
                            fmt::format("bind queue {} (is another process using it?)", options.num).c_str());
        !s)
        return std::move(s).error();

    nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, options.num);
    nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, static_cast<int>(options.copyRange));
    nfq_nlmsg_cfg_put_qmaxlen(nlh, options.maxLen);
    // GSO: no segmentation for us (we only read headers). FAIL_OPEN as configured.
    uint32_t flags = NFQA_CFG_F_GSO | (options.failOpen ? NFQA_CFG_F_FAIL_OPEN : 0);
    mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
    mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN));
    nlh->nlmsg_flags |= NLM_F_ACK;
    if (auto s = sendConfig(r->nl_.get(), nlh, "configure queue"); !s) return std::move(s).error();

    r->wake_ = sys::Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!r->wake_) return makeError("nfqueue {}: eventfd: {}", options.num, std::strerror(errno));
    // One receive buffer for a burst of messages; verdicts for a full burst.
    r->in_.resize(1 << 17);
    r->out_.resize(kVerdictRoom * 512);
    return r;
}

QueueReader::~QueueReader() { stop(); }

void QueueReader::start() {
    thread_ = std::thread([this] { run(); });
}

void QueueReader::drain(uint64_t deadlineNs) noexcept {
    if (!thread_.joinable()) return;
    drainDeadlineNs_.store(std::max<uint64_t>(deadlineNs, 1));
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
}

void QueueReader::stop() {
    if (!thread_.joinable()) return;
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
    thread_.join();
}

void QueueReader::handle(const nlmsghdr* nlh, char*& out) noexcept {
    nlattr* attr[NFQA_MAX + 1] = {};
    if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == nullptr) return;
    auto* ph = static_cast<nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
    uint32_t id = ntohl(ph->packet_id);
    stats_.packets.fetch_add(1, std::memory_order_relaxed);
    uint64_t start = monotonicNowNs();

    bool accept;
    knp_packet pkt;
    const auto* payload =
        attr[NFQA_PAYLOAD] != nullptr ? static_cast<const uint8_t*>(mnl_attr_get_payload(attr[NFQA_PAYLOAD])) : nullptr;
    size_t plen = attr[NFQA_PAYLOAD] != nullptr ? mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]) : 0;
    ParseStatus ps = parsePacket(payload, plen, pkt);
    if (ps == ParseStatus::Ok || ps == ParseStatus::NonFirstFragment) {
        // Only original-direction packets come here (the ruleset accepts replies), so the
        // packet's source is the end that opened the connection.
        accept = judge_.accept(index_, pkt);
        metrics_.record(pkt.protocol, pkt.family, accept, monotonicNowNs() - start);
    } else {
        // Truncated or malformed: the configured default, never a crash.
        stats_.unparsable.fetch_add(1, std::memory_order_relaxed);
        accept = options_.failOpen;
    }
    (accept ? stats_.accepted : stats_.denied).fetch_add(1, std::memory_order_relaxed);

    nlmsghdr* v = nfq_nlmsg_put(out, NFQNL_MSG_VERDICT, options_.num);
    // Accept is NF_REPEAT with the mark bit: the packet runs the base chain that queued it once
    // more, where the bit makes the ruleset label the connection, clear the bit again and
    // accept; the connection's later packets then match the label rule in the kernel and never
    // come here. The packet's own mark is kept.
    nfq_nlmsg_verdict_put(v, static_cast<int>(id), accept ? NF_REPEAT : NF_DROP);
    if (accept) {
        uint32_t mark = attr[NFQA_MARK] != nullptr ? ntohl(mnl_attr_get_u32(attr[NFQA_MARK])) : 0;
        nfq_nlmsg_verdict_put_mark(v, mark | options_.acceptMark);
    }
    out += NLMSG_ALIGN(v->nlmsg_len);
}

void QueueReader::flushVerdicts(char*& out) noexcept {
    // Verdicts go out in arrival order, many per sendto; a full buffer is sent before the next.
    if (out == out_.data()) return;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(mnl_socket_get_fd(nl_.get()), out_.data(), static_cast<size_t>(out - out_.data()), 0,
                 reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
        stats_.receiveErrors.fetch_add(1, std::memory_order_relaxed);
    out = out_.data();
}

int QueueReader::readBurst(char*& out, int rounds) noexcept {
    int fd = mnl_socket_get_fd(nl_.get());
    int received = 0;
    judge_.begin(index_);
    for (; received < rounds; ++received) {
        // A drain asked for: stop taking from the socket, so the kernel is told to queue nothing
        // more before the backlog is read (run() goes on with runDrain()).
        if (received > 0 && drainDeadlineNs_.load(std::memory_order_relaxed) != 0) break;
        ssize_t n = ::recv(fd, in_.data(), in_.size(), MSG_DONTWAIT);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ENOBUFS)
                stats_.receiveErrors.fetch_add(1, std::memory_order_relaxed);
            break;
        }
        int len = static_cast<int>(n);
        for (auto* nlh = reinterpret_cast<const nlmsghdr*>(in_.data()); mnl_nlmsg_ok(nlh, len);
             nlh = mnl_nlmsg_next(nlh, &len)) {
            if (nlh->nlmsg_type != ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) continue;
            if (out_.data() + out_.size() - out < static_cast<ptrdiff_t>(kVerdictRoom)) flushVerdicts(out);
            handle(nlh, out);
        }
    }
    judge_.done(index_);
    flushVerdicts(out);
    return received;
}

void QueueReader::runDrain(char*& out) noexcept {
    // Queue nothing more for us: with a maximum length of 0 and F_FAIL_OPEN the kernel accepts
    // each new packet itself. The change is made under the queue lock, so once sendto returns,
    // every packet still queued has its message in our socket. No ack is asked for: a refusal
    // (a kernel without the attribute) only means the backlog keeps growing until the deadline.
    char buf[MNL_SOCKET_BUFFER_SIZE];
    nlmsghdr* nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, options_.num);
    nfq_nlmsg_cfg_put_qmaxlen(nlh, 0);
    mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_FAIL_OPEN));
    mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_FAIL_OPEN));
    if (mnl_socket_sendto(nl_.get(), nlh, nlh->nlmsg_len) < 0)
        stats_.receiveErrors.fetch_add(1, std::memory_order_relaxed);
    int fd = mnl_socket_get_fd(nl_.get());
    uint64_t deadline = drainDeadlineNs_.load();
    uint64_t before = stats_.packets.load(std::memory_order_relaxed);
    // Answer until the socket has stayed empty for a moment (the backlog is finite), or the
    // deadline passes.
    constexpr int kQuietMs = 20;
    while (true) {
        readBurst(out, 64);
        uint64_t now = monotonicNowNs();
        if (now >= deadline) break;
        int wait = static_cast<int>(std::min<uint64_t>(kQuietMs, (deadline - now) / 1000000 + 1));
        pollfd p{fd, POLLIN, 0};
        int r = ::poll(&p, 1, wait);
        if (r == 0) break;
        if (r < 0 && errno != EINTR) break;
    }
    drained_.store(stats_.packets.load(std::memory_order_relaxed) - before, std::memory_order_relaxed);
}

void QueueReader::run() noexcept {
    int fd = mnl_socket_get_fd(nl_.get());
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    char* out = out_.data();
    while (true) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (fds[1].revents != 0) {
            if (drainDeadlineNs_.load() != 0) runDrain(out);
            break;
        }
        // Drain what is waiting (bounded, so verdicts are never held back for long).
        readBurst(out, 64);
    }
}

}  // namespace knp::host
