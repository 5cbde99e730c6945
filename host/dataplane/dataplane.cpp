#include "dataplane/dataplane.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <chrono>

#include <knp/types.hpp>

#include "common/log.hpp"
#include "engine/engine.hpp"

namespace knp::host {

namespace {

// Per-packet decision lines (-v=5), per reader: a burst, then this many a second.
constexpr double kPacketLogPerSecond = 50;
constexpr double kPacketLogBurst = 50;

// "10.0.0.1:80" / "[fd00::1]:80" into `buf`, without allocating.
std::string_view formatEndpoint(const knp_addr& a, uint16_t port, char (&buf)[64]) noexcept {
    char ip[INET6_ADDRSTRLEN] = {};
    bool v4 = a.family == KNP_FAMILY_IPV4;
    inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? a.bytes + 12 : a.bytes, ip, sizeof ip);
    auto r = v4 ? fmt::format_to_n(buf, sizeof buf, "{}:{}", ip, port)
                : fmt::format_to_n(buf, sizeof buf, "[{}]:{}", ip, port);
    return std::string_view(buf, std::min(r.size, sizeof buf));
}

std::string_view verdictWord(const DirectionVerdict& d) noexcept {
    if (!d.evaluated) return "-";
    return d.verdict == KNP_VERDICT_DENY ? "deny" : "accept";
}

}  // namespace

Dataplane::Dataplane(DataplaneOptions options, QueueMethod method)
    : options_(std::move(options)),
      ruleset_(options_.ruleset, method),
      slots_(std::make_unique<Slot[]>(options_.ruleset.queueCount + 1)) {}

Dataplane::~Dataplane() {
    for (auto& r : readers_) r->stop();
    readers_.clear();
    if (const View* v = view_.exchange(nullptr)) delete v;
    for (auto& [v, e] : retired_) delete v;
}

Status Dataplane::start() {
    if (options_.ruleset.queueCount > kMaxReaders)
        return makeError("{} queues: knpd runs at most {} readers", options_.ruleset.queueCount, kMaxReaders);
    for (unsigned i = 0; i < options_.ruleset.queueCount; ++i) {
        QueueOptions q = options_.queue;
        q.num = static_cast<uint16_t>(options_.ruleset.queueNum + i);
        q.acceptMark = options_.ruleset.acceptMark;  // the readers set what the ruleset tests
        auto r = QueueReader::open(q, i, *this);
        if (!r) return std::move(r).error();
        readers_.push_back(std::move(*r));
    }
    for (auto& r : readers_) r->start();
    return okStatus();
}

Status Dataplane::publish(std::shared_ptr<const PipelineSnapshot> pipeline,
                          std::shared_ptr<const ClusterSnapshot> cluster) {
    std::vector<const InterestSet*> interests;
    for (const auto& s : pipeline->pluginSnapshots())
        if (s) interests.push_back(&s->interest());
    DesiredRuleset desired = desiredRuleset(interests, cluster->localPodIps());

    // Readers see the new view before the kernel queues new traffic for it.
    const View* old = view_.exchange(new View{std::move(pipeline), std::move(cluster)});
    uint64_t e = epoch_.fetch_add(1) + 1;
    if (old != nullptr) retired_.emplace_back(old, e);
    reclaim();
    uint64_t start = monotonicNowNs();
    Status s = ruleset_.apply(desired);
    if (s) {
        rulesetStats_.latency.observe(RulesetStats::kBoundsNs, monotonicNowNs() - start);
        auto now = std::chrono::system_clock::now().time_since_epoch();
        rulesetStats_.lastSuccessUnixNs.store(
            static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()));
    } else {
        rulesetStats_.failures.add();
    }
    rulesetStats_.transactions.add(ruleset_.transactions() - rulesetStats_.transactions.get());
    rulesetStats_.fullLoads.add(ruleset_.fullLoads() - rulesetStats_.fullLoads.get());
    return s;
}

void Dataplane::observe(const std::function<void(const PipelineSnapshot*, const ClusterSnapshot*)>& fn) const {
    std::lock_guard lock(observerMutex_);
    Slot& s = slots_[observerSlot()];
    // The reader protocol (begin/done): announce the epoch, then load the view.
    s.seen.store(epoch_.load());
    const View* v = view_.load();
    struct Offline {
        Slot& s;
        ~Offline() { s.seen.store(kOffline); }
    } offline{s};
    fn(v != nullptr ? v->pipeline.get() : nullptr, v != nullptr ? v->cluster.get() : nullptr);
}

void Dataplane::reclaim() {
    if (retired_.empty()) return;
    uint64_t min = kOffline;
    for (unsigned i = 0; i <= observerSlot(); ++i) min = std::min(min, slots_[i].seen.load());
    auto keep = retired_.begin();
    for (auto it = retired_.begin(); it != retired_.end(); ++it) {
        if (it->second <= min) {
            delete it->first;  // may release plugin snapshots: we are on the control thread
        } else {
            *keep++ = *it;
        }
    }
    retired_.erase(keep, retired_.end());
}

Status Dataplane::stop() {
    // All queues drain at once, under one deadline.
    uint64_t deadline =
        monotonicNowNs() + static_cast<uint64_t>(std::chrono::nanoseconds(options_.drainTimeout).count());
    for (auto& r : readers_) r->drain(deadline);
    for (auto& r : readers_) r->stop();
    if (options_.removeOnStop) return ruleset_.remove();
    return okStatus();
}

void Dataplane::begin(unsigned reader) noexcept {
    Slot& s = slots_[reader];
    s.seen.store(epoch_.load());
    s.view = view_.load();
}

bool Dataplane::accept(unsigned reader, const knp_packet& packet) noexcept {
    const View* v = slots_[reader].view;
    // Nothing published yet: the not-ready behaviour is the fail-open setting.
    if (v == nullptr) return options_.queue.failOpen;
    const ClusterSnapshot& c = *v->cluster;
    EvaluateScope scope{c.isLocal(packet.src), c.isLocal(packet.dst)};
    if (!scope.egress && !scope.ingress) return true;  // neither end lives here: not ours to judge
    PacketVerdict verdict = evaluatePacket(*v->pipeline, c, packet, scope, reader);
    if (logEnabled(LogLevel::Packet)) [[unlikely]]
        logDecision(reader, packet, verdict);
    return verdict.accept;
}

void Dataplane::logDecision(unsigned reader, const knp_packet& packet, const PacketVerdict& v) noexcept {
    Slot& s = slots_[reader];
    uint64_t now = monotonicNowNs();
    if (s.logRefillNs == 0) s.logTokens = kPacketLogBurst;
    s.logTokens =
        std::min(kPacketLogBurst, s.logTokens + static_cast<double>(now - s.logRefillNs) * 1e-9 * kPacketLogPerSecond);
    s.logRefillNs = now;
    if (s.logTokens < 1) {
        ++s.logSuppressed;
        return;
    }
    s.logTokens -= 1;
    // The direction that decided: a deny if there is one, else the ingress answer.
    const DirectionVerdict& d =
        v.egress.evaluated && (v.egress.verdict == KNP_VERDICT_DENY || !v.ingress.evaluated) ? v.egress : v.ingress;
    char src[64], dst[64], queue[8], suppressed[24];
    auto num = [](char* b, size_t n, uint64_t x) {
        auto r = std::to_chars(b, b + n, x);
        return std::string_view(b, static_cast<size_t>(r.ptr - b));
    };
    std::string_view protocol = protocolName(packet.protocol);
    LogField fields[] = {
        {"queue", num(queue, sizeof queue, options_.ruleset.queueNum + reader)},
        {"protocol", protocol},
        {"src", formatEndpoint(packet.src, packet.src_port, src)},
        {"dst", formatEndpoint(packet.dst, packet.dst_port, dst)},
        {"verdict", v.accept ? "accept" : "drop"},
        {"egress", verdictWord(v.egress)},
        {"ingress", verdictWord(v.ingress)},
        {"instance", d.decidedBy != nullptr ? std::string_view(d.decidedBy->name()) : std::string_view("-")},
        {"reason", d.reason},
        {"rule", d.rule},
        {"suppressed", num(suppressed, sizeof suppressed, s.logSuppressed)},
    };
    s.logSuppressed = 0;
    logWrite(LogLevel::Packet, "packet decision", fields);
}

void Dataplane::done(unsigned reader) noexcept {
    slots_[reader].view = nullptr;
    slots_[reader].seen.store(kOffline);
}

}  // namespace knp::host
