// knp C++ SDK — helpers for plugin unit tests: a fake host, owned pods and packets, and a
// harness that drives a plugin through the C ABI exactly as the host does.
//
// SPDX-License-Identifier: Apache-2.0
//
//   knp::testing::Harness h("/path/to/my-plugin.so");   // dlopen + descriptor checks
//   REQUIRE(h.init(R"({"denyPorts": [23]})").ok());
//   REQUIRE(h.update().ok());
//   auto web = knp::testing::OwnedPod("shop", "web").ip("10.0.0.2");
//   auto r = h.evaluateIngress(knp::testing::makePacket("10.9.9.9", "10.0.0.2", KNP_PROTO_TCP, 23),
//                              nullptr, web.get());
//   CHECK(r.verdict == knp::Verdict::Deny);
//
// The harness calls nothing but the descriptor's function table, so a test exercises the same
// trampolines, error buffers and snapshot lifetimes the host does; a plugin that passes here
// has no C++-level shortcut the host would not take.
//
// This header is for tests, never for plugins: it allocates, locks and throws freely. Misuse by
// the test (evaluating before a snapshot exists, an event for a watch that does not exist)
// throws std::logic_error; a plugin that breaks the ABI contract (bad descriptor, malformed
// interest, a snapshot handed back twice) throws knp::testing::ContractError.
//
// Link with -ldl on glibc older than 2.34 (dlopen moved into libc then).
// SINCE: 1.0
#ifndef KNP_TESTING_HPP
#define KNP_TESTING_HPP

#include <knp/plugin.hpp>
#include <knp/plugin_api.h>
#include <knp/types.hpp>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <dlfcn.h>

namespace knp::testing {

// A plugin broke the ABI contract in a way a real host would reject or crash on.
class ContractError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Parses an address literal for test fixtures; a typo in a test should fail loudly, not turn
// into an address nobody meant.
inline knp_addr addr(std::string_view text) {
    auto a = parseAddr(text);
    if (!a) throw std::invalid_argument("not an IP address: \"" + std::string(text) + "\"");
    return *a;
}

// ---------------------------------------------------------------------------------------------
// OwnedPod
// ---------------------------------------------------------------------------------------------

// A pod that owns every string and array a knp_pod points at, built fluently:
//   auto db = OwnedPod("shop", "db").label("app", "db").ip("10.0.0.3").ip("fd00::3")
//                 .containerPort(5432, KNP_PROTO_TCP, "pg");
// Labels, namespace labels and node labels are kept sorted by key, as the host hands them out;
// the namespace labels always hold kubernetes.io/metadata.name=<namespace>, as Kubernetes sets
// it on every Namespace.
// OWNERSHIP: get() points into this object; it stays valid until the object is modified,
// moved from, or destroyed. A copy or move builds its own view.
// THREAD: get() and the accessors are const and safe to share between evaluating threads;
// the builder methods are not.
class OwnedPod {
public:
    static constexpr std::string_view kNamespaceNameLabel = "kubernetes.io/metadata.name";

    OwnedPod(std::string podNamespace, std::string name) {
        d_.ns = std::move(podNamespace);
        d_.name = std::move(name);
        d_.uid = d_.ns + "/" + d_.name;  // unique per pod is all a plugin may assume
        d_.nsLabels[std::string(kNamespaceNameLabel)] = d_.ns;
        rebuild();
    }
    OwnedPod(const OwnedPod& o) : d_(o.d_) { rebuild(); }
    OwnedPod(OwnedPod&& o) noexcept : d_(std::move(o.d_)) {
        rebuild();
        o.rebuild();
    }
    OwnedPod& operator=(const OwnedPod& o) {
        if (this != &o) {
            d_ = o.d_;
            rebuild();
        }
        return *this;
    }
    OwnedPod& operator=(OwnedPod&& o) noexcept {
        if (this != &o) {
            d_ = std::move(o.d_);
            rebuild();
            o.rebuild();
        }
        return *this;
    }
    ~OwnedPod() = default;

    OwnedPod& uid(std::string v) {
        return set([&] { d_.uid = std::move(v); });
    }
    OwnedPod& label(std::string key, std::string value) {
        return set([&] { d_.labels[std::move(key)] = std::move(value); });
    }
    OwnedPod& namespaceLabel(std::string key, std::string value) {
        if (key == kNamespaceNameLabel)
            throw std::invalid_argument("kubernetes.io/metadata.name is always the pod's namespace");
        return set([&] { d_.nsLabels[std::move(key)] = std::move(value); });
    }
    OwnedPod& node(std::string name) {
        return set([&] { d_.node = std::move(name); });
    }
    OwnedPod& nodeLabel(std::string key, std::string value) {
        return set([&] { d_.nodeLabels[std::move(key)] = std::move(value); });
    }
    OwnedPod& nodeAddress(std::string_view ip) {
        return set([&] { d_.nodeAddresses.push_back(addr(ip)); });
    }
    OwnedPod& containerPort(uint16_t port, uint8_t protocol = KNP_PROTO_TCP, std::string name = {}) {
        return set([&] { d_.ports.push_back({std::move(name), port, protocol}); });
    }
    OwnedPod& ip(std::string_view ip) {
        return set([&] { d_.ips.push_back(addr(ip)); });
    }
    OwnedPod& hostNetwork(bool on = true) {
        return set([&] { d_.hostNetwork = on; });
    }

    const knp_pod* get() const noexcept { return &pod_; }
    PodView view() const noexcept { return PodView(&pod_); }
    const std::string& name() const noexcept { return d_.name; }
    const std::string& podNamespace() const noexcept { return d_.ns; }
    const std::string& nodeName() const noexcept { return d_.node; }

private:
    struct Port {
        std::string name;
        uint16_t port;
        uint8_t protocol;
    };
    // std::map keeps keys sorted, which is the order the ABI promises for label arrays.
    struct Data {
        std::string ns, name, uid, node;
        std::map<std::string, std::string> labels, nsLabels, nodeLabels;
        std::vector<knp_addr> nodeAddresses, ips;
        std::vector<Port> ports;
        bool hostNetwork = false;
    };

    template <class Fn>
    OwnedPod& set(Fn&& fn) {
        fn();
        rebuild();
        return *this;
    }

    static void viewLabels(const std::map<std::string, std::string>& in, std::vector<knp_label>& out) {
        out.clear();
        for (const auto& [k, v] : in) out.push_back({toC(k), toC(v)});
    }

    // Rebuilt eagerly after every change so that get() is a plain const read, safe to share
    // between threads that evaluate concurrently.
    void rebuild() noexcept {
        try {
            viewLabels(d_.labels, labels_);
            viewLabels(d_.nsLabels, nsLabels_);
            viewLabels(d_.nodeLabels, nodeLabels_);
            ports_.clear();
            for (const Port& p : d_.ports) {
                knp_container_port c{};
                c.name = toC(p.name);
                c.port = p.port;
                c.protocol = p.protocol;
                ports_.push_back(c);
            }
        } catch (...) {
            std::terminate();  // out of memory in a test fixture: nothing sensible remains
        }
        pod_ = {};
        pod_.struct_size = sizeof pod_;
        pod_.flags = d_.hostNetwork ? KNP_POD_HOST_NETWORK : 0;
        pod_.name = toC(d_.name);
        pod_.pod_namespace = toC(d_.ns);
        pod_.uid = toC(d_.uid);
        pod_.labels = labels_.data();
        pod_.n_labels = labels_.size();
        pod_.namespace_labels = nsLabels_.data();
        pod_.n_namespace_labels = nsLabels_.size();
        pod_.node_name = toC(d_.node);
        pod_.node_labels = nodeLabels_.data();
        pod_.n_node_labels = nodeLabels_.size();
        pod_.node_addresses = d_.nodeAddresses.data();
        pod_.n_node_addresses = d_.nodeAddresses.size();
        pod_.container_ports = ports_.data();
        pod_.n_container_ports = ports_.size();
        pod_.ips = d_.ips.data();
        pod_.n_ips = d_.ips.size();
    }

    Data d_;
    std::vector<knp_label> labels_, nsLabels_, nodeLabels_;
    std::vector<knp_container_port> ports_;
    knp_pod pod_{};
};

// ---------------------------------------------------------------------------------------------
// Packets
// ---------------------------------------------------------------------------------------------

// The first packet of a connection, as the host would parse it. For ICMP/ICMPv6 the ports are
// 0 and the type is an echo request (the ABI says ports are not set for ICMP); `dstPort` is
// ignored then. Throws std::invalid_argument on a bad address or mixed families.
// OWNERSHIP: self-contained (no headers), copy freely.
inline knp_packet makePacket(std::string_view src, std::string_view dst, uint8_t protocol, uint16_t dstPort = 0,
                             uint16_t srcPort = 40000) {
    knp_packet p{};
    p.struct_size = sizeof p;
    p.src = addr(src);
    p.dst = addr(dst);
    if (p.src.family != p.dst.family)
        throw std::invalid_argument("packet mixes address families: " + std::string(src) + " -> " + std::string(dst));
    p.family = p.src.family;
    p.protocol = protocol;
    if (protocol == KNP_PROTO_ICMP || protocol == KNP_PROTO_ICMPV6) {
        p.icmp_type = protocol == KNP_PROTO_ICMP ? 8 : 128;
    } else {
        p.src_port = srcPort;
        p.dst_port = dstPort;
    }
    return p;
}

// ---------------------------------------------------------------------------------------------
// FakeHost
// ---------------------------------------------------------------------------------------------

struct LogLine {
    int32_t level;  // KNP_LOG_*
    std::string message;
};

struct MetricRecord {
    int32_t type;  // KNP_METRIC_*
    std::string name;
    std::string help;
    double value = 0;                  // counter total or gauge value
    std::vector<double> observations;  // histogram samples, in order
};

// The host's service table (knp_host_api) backed by plain containers a test can inspect.
// It also checks the calling rules a real host relies on and records each breach in
// violations(): for_each_pod outside update() or off the control thread, metric_define off the
// control thread, an unknown metric id, a metric call that does not fit the metric's type, a log
// level out of range.
// THREAD: the service callbacks are safe from any thread, like the real host's (a mutex here,
// which is fine in a test). The control thread is the one that constructed the FakeHost.
// Configuration (setNodeName, addPod, ...) belongs on the control thread, outside update().
// OWNERSHIP: api() and ctx() stay valid for the FakeHost's lifetime; it must outlive every
// plugin instance given them.
class FakeHost {
public:
    FakeHost() : control_(std::this_thread::get_id()) {
        api_.struct_size = sizeof api_;
        api_.log = &logCb;
        api_.log_enabled = &logEnabledCb;
        api_.metric_define = &metricDefineCb;
        api_.metric_add = &metricAddCb;
        api_.metric_set = &metricSetCb;
        api_.metric_observe = &metricObserveCb;
        api_.request_update = &requestUpdateCb;
        api_.monotonic_ns = &monotonicCb;
        api_.for_each_pod = &forEachPodCb;
    }
    FakeHost(const FakeHost&) = delete;
    FakeHost& operator=(const FakeHost&) = delete;

    const knp_host_api* api() const noexcept { return &api_; }
    void* ctx() noexcept { return this; }

    // The node this host enforces for; for_each_pod(local_only) keeps pods scheduled on it, and
    // Harness passes it as knp_init_args.node_name. Empty (the default) is what knpctl simulate
    // passes.
    void setNodeName(std::string name) { nodeName_ = std::move(name); }
    const std::string& nodeName() const noexcept { return nodeName_; }

    // log_enabled answers true for levels up to this one (default KNP_LOG_DEBUG).
    void setLogLevel(int32_t maxLevel) noexcept { logLevel_ = maxLevel; }

    // The pod index that for_each_pod walks, in insertion order. Changing a pod is removePod
    // then addPod. The host records what changed since the previous update() and hands it to
    // the plugin as knp_update_args.pod_changes (ABI 1.1), as knpd does; see setPodChanges().
    void addPod(OwnedPod pod) {
        if (baseline_) changed_.try_emplace({pod.podNamespace(), pod.name()});
        pods_.push_back(std::move(pod));
    }
    bool removePod(std::string_view podNamespace, std::string_view name) {
        for (auto it = pods_.begin(); it != pods_.end(); ++it) {
            if (it->podNamespace() == podNamespace && it->name() == name) {
                forget(std::move(*it));
                pods_.erase(it);
                return true;
            }
        }
        return false;
    }
    void clearPods() {
        for (OwnedPod& p : pods_) forget(std::move(p));
        pods_.clear();
    }
    // Whether Harness::update(true) lists the changed pods (KNP_UPDATE_POD_CHANGES; default
    // on). Off, a plugin must walk for_each_pod to learn what changed, as with a 1.0 host.
    void setPodChanges(bool on) noexcept { podChanges_ = on; }

    // The fake clock monotonic_ns reads; starts at 1 s so that 0 never looks like "unset".
    void advanceClock(uint64_t ns) noexcept { clock_.fetch_add(ns, std::memory_order_relaxed); }

    // Marks "inside update()" for the duration of a scope; Harness::update() uses it, and a
    // test that calls a plugin's update path without the harness can too.
    class UpdateScope {
    public:
        explicit UpdateScope(FakeHost& h) noexcept : h_(h) { h_.inUpdate_ = true; }
        ~UpdateScope() { h_.inUpdate_ = false; }
        UpdateScope(const UpdateScope&) = delete;
        UpdateScope& operator=(const UpdateScope&) = delete;

    private:
        FakeHost& h_;
    };

    // Inspection: copies taken under the lock, so a test may read while data threads log.
    std::vector<LogLine> logs() const {
        std::lock_guard lock(mu_);
        return logs_;
    }
    // True when some log line at `level` (any level when negative) contains `needle`.
    bool logged(std::string_view needle, int32_t level = -1) const {
        std::lock_guard lock(mu_);
        for (const LogLine& l : logs_)
            if ((level < 0 || l.level == level) && l.message.find(needle) != std::string::npos) return true;
        return false;
    }
    std::vector<MetricRecord> metrics() const {
        std::lock_guard lock(mu_);
        return metrics_;
    }
    std::optional<MetricRecord> metric(std::string_view name) const {
        std::lock_guard lock(mu_);
        for (const MetricRecord& m : metrics_)
            if (m.name == name) return m;
        return std::nullopt;
    }
    uint64_t updateRequests() const noexcept { return updateRequests_.load(); }
    std::vector<std::string> violations() const {
        std::lock_guard lock(mu_);
        return violations_;
    }

private:
    static FakeHost& self(void* ctx) noexcept { return *static_cast<FakeHost*>(ctx); }

    // Every callback is noexcept and swallows allocation failures: an exception must not cross
    // back into the plugin any more than out of it.
    void violation(std::string what) noexcept {
        try {
            std::lock_guard lock(mu_);
            violations_.push_back(std::move(what));
        } catch (...) {
        }
    }
    bool onControlThread() const noexcept { return std::this_thread::get_id() == control_; }

    // Looks up a metric and checks that `op` fits its type. Caller holds mu_.
    MetricRecord* metricFor(uint32_t id, const char* op, bool fits(int32_t type)) {
        if (id >= metrics_.size()) {
            violations_.push_back(std::string(op) + " with unknown metric id " + std::to_string(id));
            return nullptr;
        }
        MetricRecord& m = metrics_[id];
        if (!fits(m.type)) {
            violations_.push_back(std::string(op) + " on metric \"" + m.name + "\" of another type");
            return nullptr;
        }
        return &m;
    }

    static void logCb(void* ctx, int32_t level, knp_str message) noexcept {
        FakeHost& h = self(ctx);
        if (level < KNP_LOG_ERROR || level > KNP_LOG_TRACE) {
            h.violation("log with level " + std::to_string(level));
            return;
        }
        try {
            std::lock_guard lock(h.mu_);
            h.logs_.push_back({level, std::string(toView(message))});
        } catch (...) {
        }
    }
    static int32_t logEnabledCb(void* ctx, int32_t level) noexcept {
        return level <= self(ctx).logLevel_.load() ? 1 : 0;
    }
    static int32_t metricDefineCb(void* ctx, int32_t type, knp_str name, knp_str help, uint32_t* outId) noexcept {
        FakeHost& h = self(ctx);
        if (!h.onControlThread()) h.violation("metric_define off the control thread");
        if (outId == nullptr || name.len == 0 || type < KNP_METRIC_COUNTER || type > KNP_METRIC_HISTOGRAM)
            return -EINVAL;
        try {
            std::lock_guard lock(h.mu_);
            for (const MetricRecord& m : h.metrics_)
                if (m.name == toView(name)) return -EEXIST;
            h.metrics_.push_back({type, std::string(toView(name)), std::string(toView(help)), 0, {}});
            *outId = static_cast<uint32_t>(h.metrics_.size() - 1);
            return KNP_OK;
        } catch (...) {
            return -ENOMEM;
        }
    }
    static void metricAddCb(void* ctx, uint32_t id, double v) noexcept {
        FakeHost& h = self(ctx);
        try {
            std::lock_guard lock(h.mu_);
            MetricRecord* m = h.metricFor(id, "metric_add",
                                          [](int32_t t) { return t == KNP_METRIC_COUNTER || t == KNP_METRIC_GAUGE; });
            if (m == nullptr) return;
            if (m->type == KNP_METRIC_COUNTER && v < 0)
                h.violations_.push_back("metric_add of a negative value to counter \"" + m->name + "\"");
            else
                m->value += v;
        } catch (...) {
        }
    }
    static void metricSetCb(void* ctx, uint32_t id, double v) noexcept {
        FakeHost& h = self(ctx);
        try {
            std::lock_guard lock(h.mu_);
            if (MetricRecord* m = h.metricFor(id, "metric_set", [](int32_t t) { return t == KNP_METRIC_GAUGE; }))
                m->value = v;
        } catch (...) {
        }
    }
    static void metricObserveCb(void* ctx, uint32_t id, double v) noexcept {
        FakeHost& h = self(ctx);
        try {
            std::lock_guard lock(h.mu_);
            if (MetricRecord* m =
                    h.metricFor(id, "metric_observe", [](int32_t t) { return t == KNP_METRIC_HISTOGRAM; }))
                m->observations.push_back(v);
        } catch (...) {
        }
    }
    static void requestUpdateCb(void* ctx) noexcept { self(ctx).updateRequests_.fetch_add(1); }
    static uint64_t monotonicCb(void* ctx) noexcept { return self(ctx).clock_.load(std::memory_order_relaxed); }
    static int32_t forEachPodCb(void* ctx, int32_t localOnly, int32_t (*fn)(void*, const knp_pod*),
                                void* user) noexcept {
        FakeHost& h = self(ctx);
        // Refused rather than served: a plugin that walks pods outside update() works in a
        // test only by accident, so the test should see it fail.
        if (!h.onControlThread() || !h.inUpdate_) {
            h.violation("for_each_pod outside update() on the control thread");
            return -EPERM;
        }
        if (fn == nullptr) return -EINVAL;
        for (const OwnedPod& p : h.pods_) {
            if (localOnly != 0 && p.nodeName() != h.nodeName_) continue;
            if (int32_t rc = fn(user, p.get()); rc != 0) return rc;
        }
        return 0;
    }

    friend class Harness;

    // A pod leaving the index: its view as of the previous update() stays alive until the next
    // one, as `before`. A pod added and removed between two updates was never seen: no change.
    void forget(OwnedPod&& pod) {
        if (!baseline_) return;
        auto it = changed_.find({pod.podNamespace(), pod.name()});
        if (it == changed_.end()) {
            changed_.emplace(std::pair{pod.podNamespace(), pod.name()}, std::move(pod));
        } else if (!it->second) {
            changed_.erase(it);
        }
    }

    // The changes since the previous update(), as the ABI lists them; the views stay valid until
    // endUpdate(). Searching pods_ from the back finds a freshly added pod at once.
    std::vector<knp_pod_change> podChanges() const {
        std::vector<knp_pod_change> out;
        for (const auto& [key, before] : changed_) {
            knp_pod_change c{};
            c.struct_size = sizeof c;
            c.before = before ? before->get() : nullptr;
            for (auto it = pods_.rbegin(); it != pods_.rend(); ++it) {
                if (it->podNamespace() == key.first && it->name() == key.second) {
                    c.after = it->get();
                    break;
                }
            }
            if (c.before != nullptr || c.after != nullptr) out.push_back(c);
        }
        return out;
    }
    void endUpdate() { changed_.clear(); }

    knp_host_api api_{};
    const std::thread::id control_;
    std::string nodeName_;
    std::atomic<int32_t> logLevel_{KNP_LOG_DEBUG};
    std::vector<OwnedPod> pods_;
    // Pods added or removed since the previous update(), by namespace/name, with the removed
    // one's old view (nullopt: it was not in the index then).
    std::map<std::pair<std::string, std::string>, std::optional<OwnedPod>> changed_;
    bool podChanges_ = true;
    bool baseline_ = false;  // the plugin saw the index at its last update(): track changes
    bool inUpdate_ = false;  // control thread only
    std::atomic<uint64_t> clock_{1'000'000'000};
    std::atomic<uint64_t> updateRequests_{0};

    mutable std::mutex mu_;  // guards everything below
    std::vector<LogLine> logs_;
    std::vector<MetricRecord> metrics_;  // index = metric id
    std::vector<std::string> violations_;
};

// ---------------------------------------------------------------------------------------------
// Descriptor checks
// ---------------------------------------------------------------------------------------------

// What a host would refuse about a descriptor, or nothing when it would load it. The same
// checks the host's loader makes, so a plugin sees the refusal in its own unit tests first.
inline std::optional<std::string> descriptorProblem(const knp_plugin_descriptor* d) {
    if (d == nullptr) return "the entry returned no descriptor";
    // struct_size, abi_major and abi_minor lead the descriptor in every major: read nothing
    // else before the size says it is there.
    if (d->struct_size < offsetof(knp_plugin_descriptor, abi_minor) + sizeof d->abi_minor)
        return "descriptor struct_size " + std::to_string(d->struct_size) + " is too small";
    if (d->abi_major != KNP_ABI_MAJOR)
        return "ABI major " + std::to_string(d->abi_major) + ", host has " + std::to_string(KNP_ABI_MAJOR);
    if (d->abi_minor > KNP_ABI_MINOR)
        return "ABI minor " + std::to_string(d->abi_minor) + " is newer than the host's " +
               std::to_string(KNP_ABI_MINOR);
    // Every member of 1.0 is required, so the 1.0 size is the floor.
    if (!KNP_HAS_MEMBER(knp_plugin_descriptor, d->struct_size, evaluate_egress))
        return "descriptor struct_size " + std::to_string(d->struct_size) + " is smaller than ABI 1.0's";
    if (d->name == nullptr || d->name[0] == '\0') return "descriptor has no name";
    if (d->version == nullptr) return "descriptor has no version";
    if (d->init == nullptr) return "descriptor function init is NULL";
    if (d->destroy == nullptr) return "descriptor function destroy is NULL";
    if (d->update == nullptr) return "descriptor function update is NULL";
    if (d->release_snapshot == nullptr) return "descriptor function release_snapshot is NULL";
    constexpr uint64_t kKnownCaps = KNP_CAP_INGRESS | KNP_CAP_EGRESS;
    if ((d->capabilities & ~kKnownCaps) != 0) return "descriptor claims unknown capabilities";
    if ((d->capabilities & kKnownCaps) == 0) return "descriptor claims neither ingress nor egress";
    if ((d->capabilities & KNP_CAP_INGRESS) != 0 && d->evaluate_ingress == nullptr)
        return "descriptor claims ingress without evaluate_ingress";
    if ((d->capabilities & KNP_CAP_EGRESS) != 0 && d->evaluate_egress == nullptr)
        return "descriptor claims egress without evaluate_egress";
    return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

// The outcome of a control call: rc (0 or a negative errno) and, on failure, the message and
// JSON pointer the plugin wrote into the host's error buffers.
struct Status {
    int32_t rc = KNP_OK;
    std::string message;
    std::string pointer;
    bool ok() const noexcept { return rc == KNP_OK; }
};

struct UpdateStatus : Status {
    bool newSnapshot = false;  // false: the plugin said "unchanged"
};

// The outcome of one evaluation; reason and rule are copied out of the snapshot, so they stay
// readable after it is released.
struct Evaluation {
    int32_t rc = KNP_OK;
    Verdict verdict = Verdict::Next;
    std::string reason;
    std::string rule;
};

// Drives one plugin instance through its descriptor: init, watches, events, update, evaluate,
// release, destroy, in the host's order and with the host's checks.
// OWNERSHIP: owns the instance, the current snapshot and a FakeHost (host()). The destructor
// releases the snapshot and destroys the instance. A dlopen'ed library is never closed: the
// host never unloads plugins either, and a plugin's static state (thread-locals, atexit
// handlers) would otherwise outlive its code.
// THREAD: like the host. Control methods (init, watches, event injection, update, the
// destructor) on one thread; evaluateIngress/evaluateEgress from any number of threads at once,
// but not concurrently with update() (the harness releases the old snapshot inside update(),
// where the host would first wait for its data threads).
class Harness {
public:
    // A plugin compiled into the test: pass `MyPlugin::descriptor()`.
    explicit Harness(const knp_plugin_descriptor* d) : d_(checked(d)) {}

    // A built plugin, loaded as the host loads it: RTLD_NOW so a missing symbol fails here, not
    // mid-test; RTLD_LOCAL so plugins cannot bind to each other's symbols.
    explicit Harness(const std::string& soPath) : d_(checked(load(soPath))) {}

    Harness(const Harness&) = delete;
    Harness& operator=(const Harness&) = delete;

    ~Harness() {
        releaseCurrent();
        if (plugin_ != nullptr) d_->destroy(plugin_);
    }

    FakeHost& host() noexcept { return host_; }
    const knp_plugin_descriptor& descriptor() const noexcept { return *d_; }

    // Creates the instance. Once per harness; a failed init may be retried.
    Status init(std::string_view configJson = "{}", std::string_view instanceName = "test") {
        if (plugin_ != nullptr) throw std::logic_error("init() called twice");
        knp_init_args a{};
        a.struct_size = sizeof a;
        a.host_abi_minor = KNP_ABI_MINOR;
        a.instance_name = toC(instanceName);
        a.config_json = toC(configJson);
        a.node_name = toC(host_.nodeName());
        a.host = host_.api();
        a.host_ctx = host_.ctx();
        ErrorBuffers e;
        knp_plugin* p = nullptr;
        Status s;
        s.rc = d_->init(&a, &p, &e.c);
        if (s.rc == KNP_OK && p == nullptr) throw ContractError("init returned 0 without an instance");
        if (s.rc != KNP_OK) {
            e.into(s);
            // The host would not destroy what init did not hand out; a leak is the plugin's.
            return s;
        }
        plugin_ = p;
        fetchWatches();
        return s;
    }

    // The watches the instance asked for (copied at init).
    const std::vector<Watch>& watches() const noexcept { return watches_; }

    // Queue watch events for the next update(). `ns`/`name` fill object_namespace/name, which
    // the host takes from the object's metadata.
    void added(uint32_t watch, std::string json, std::string ns = {}, std::string name = {}) {
        queue(KNP_EVENT_ADDED, watch, std::move(json), std::move(ns), std::move(name));
    }
    void modified(uint32_t watch, std::string json, std::string ns = {}, std::string name = {}) {
        queue(KNP_EVENT_MODIFIED, watch, std::move(json), std::move(ns), std::move(name));
    }
    void deleted(uint32_t watch, std::string json, std::string ns = {}, std::string name = {}) {
        queue(KNP_EVENT_DELETED, watch, std::move(json), std::move(ns), std::move(name));
    }
    void synced(uint32_t watch) { queue(KNP_EVENT_SYNCED, watch, {}, {}, {}); }
    void relist(uint32_t watch) { queue(KNP_EVENT_RELIST, watch, {}, {}, {}); }

    // Calls update() with the queued events (consumed either way). A new snapshot replaces the
    // current one, which is released exactly once; "unchanged" keeps it; a failure keeps it too,
    // as the host does.
    UpdateStatus update(bool podsChanged = false) {
        requireInstance();
        std::vector<knp_event> cs;
        std::vector<const knp_event*> ptrs;
        cs.reserve(pending_.size());
        for (const PendingEvent& p : pending_) {
            knp_event c{};
            c.struct_size = sizeof c;
            c.type = p.type;
            c.watch_index = p.watch;
            c.object = toC(p.object);
            c.object_namespace = toC(p.ns);
            c.name = toC(p.name);
            cs.push_back(c);
        }
        for (const knp_event& c : cs) ptrs.push_back(&c);
        knp_update_args a{};
        a.struct_size = sizeof a;
        a.flags = podsChanged ? KNP_UPDATE_PODS_CHANGED : 0;
        a.events = ptrs.data();
        a.n_events = ptrs.size();
        // The pod delta, when the plugin saw the previous index (its last update succeeded).
        std::vector<knp_pod_change> changes;
        std::vector<const knp_pod_change*> changePtrs;
        if (podsChanged && host_.podChanges_ && host_.baseline_) {
            changes = host_.podChanges();
            for (const knp_pod_change& c : changes) changePtrs.push_back(&c);
            a.flags |= KNP_UPDATE_POD_CHANGES;
            a.pod_changes = changePtrs.data();
            a.n_pod_changes = changePtrs.size();
        }
        knp_update_result out{};
        out.struct_size = sizeof out;
        ErrorBuffers e;
        UpdateStatus s;
        {
            FakeHost::UpdateScope scope(host_);
            s.rc = d_->update(plugin_, &a, &out, &e.c);
        }
        pending_.clear();
        // Without PODS_CHANGED the plugin is not told about pod changes yet: keep them.
        if (podsChanged || !host_.baseline_) host_.endUpdate();
        host_.baseline_ = s.rc == KNP_OK;
        if (s.rc != KNP_OK) {
            e.into(s);
            return s;
        }
        if (out.snapshot == nullptr) return s;
        if (out.snapshot == snapshot_)
            throw ContractError("update returned the current snapshot again; NULL means unchanged");
        checkInterest(out.interest);
        releaseCurrent();
        snapshot_ = out.snapshot;
        interest_ = out.interest;
        s.newSnapshot = true;
        return s;
    }

    bool hasSnapshot() const noexcept { return snapshot_ != nullptr; }
    // The current snapshot, for a test that calls the function table itself (e.g. to count
    // allocations inside evaluate without the harness's own copying).
    const void* snapshot() const noexcept { return snapshot_; }
    size_t snapshotsReleased() const noexcept { return released_; }

    // The current snapshot's interest as the plugin returned it (NULL: none), and owned copies
    // of each direction (nullopt: no interest in that direction).
    const knp_interest* interest() const noexcept { return interest_; }
    std::optional<DirectionInterest> ingressInterest() const {
        return interest_ ? owned(interest_->ingress) : std::nullopt;
    }
    std::optional<DirectionInterest> egressInterest() const {
        return interest_ ? owned(interest_->egress) : std::nullopt;
    }

    // Evaluate on the current snapshot. `srcPod`/`dstPod` NULL: that end is not a pod.
    Evaluation evaluateIngress(const knp_packet& packet, const knp_pod* srcPod = nullptr,
                               const knp_pod* dstPod = nullptr) const {
        return evaluate(KNP_CAP_INGRESS, d_->evaluate_ingress, packet, srcPod, dstPod);
    }
    Evaluation evaluateEgress(const knp_packet& packet, const knp_pod* srcPod = nullptr,
                              const knp_pod* dstPod = nullptr) const {
        return evaluate(KNP_CAP_EGRESS, d_->evaluate_egress, packet, srcPod, dstPod);
    }

private:
    using EvalFn = int32_t (*)(const void*, const knp_eval_args*, knp_eval_result*);

    struct PendingEvent {
        uint32_t type;
        uint32_t watch;
        std::string object, ns, name;
    };

    // The host-owned error buffers of one control call; sized like the host's, and zeroed so
    // that a plugin which writes nothing reads back as empty strings.
    struct ErrorBuffers {
        ErrorBuffers() = default;
        ErrorBuffers(const ErrorBuffers&) = delete;  // `c` points into this very object
        ErrorBuffers& operator=(const ErrorBuffers&) = delete;
        char message[512] = {};
        char pointer[256] = {};
        knp_error c{sizeof(knp_error), 0, message, sizeof message, pointer, sizeof pointer};
        void into(Status& s) const {
            s.message = message;
            s.pointer = pointer;
        }
    };

    static const knp_plugin_descriptor* load(const std::string& path) {
        void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (h == nullptr) throw std::runtime_error("dlopen " + path + ": " + dlerror());
        auto entry = reinterpret_cast<knp_plugin_entry_fn>(dlsym(h, KNP_PLUGIN_ENTRY_SYMBOL));
        if (entry == nullptr) throw ContractError(path + " does not export " KNP_PLUGIN_ENTRY_SYMBOL);
        return entry();
    }

    static const knp_plugin_descriptor* checked(const knp_plugin_descriptor* d) {
        if (auto problem = descriptorProblem(d)) throw ContractError(*problem);
        return d;
    }

    void requireInstance() const {
        if (plugin_ == nullptr) throw std::logic_error("no instance: call init() first and check it succeeded");
    }

    void fetchWatches() {
        if (d_->get_watches == nullptr) return;  // allowed: no watches
        const knp_watch* const* ws = nullptr;
        size_t n = 0;
        if (d_->get_watches(plugin_, &ws, &n) != KNP_OK) throw ContractError("get_watches failed");
        if (n != 0 && ws == nullptr) throw ContractError("get_watches returned a count without an array");
        for (size_t i = 0; i < n; ++i) {
            const knp_watch* w = ws[i];
            if (w == nullptr || !KNP_HAS_MEMBER(knp_watch, w->struct_size, field_selector))
                throw ContractError("watch " + std::to_string(i) + " is missing or too small");
            watches_.push_back({std::string(toView(w->group)), std::string(toView(w->version)),
                                std::string(toView(w->resource)), std::string(toView(w->kind)),
                                std::string(toView(w->watch_namespace)), std::string(toView(w->label_selector)),
                                std::string(toView(w->field_selector))});
        }
    }

    void queue(uint32_t type, uint32_t watch, std::string object, std::string ns, std::string name) {
        requireInstance();
        if (watch >= watches_.size())
            throw std::logic_error("event for watch " + std::to_string(watch) + ", but the plugin has " +
                                   std::to_string(watches_.size()));
        pending_.push_back({type, watch, std::move(object), std::move(ns), std::move(name)});
    }

    void releaseCurrent() noexcept {
        if (snapshot_ == nullptr) return;
        d_->release_snapshot(plugin_, snapshot_);
        snapshot_ = nullptr;
        interest_ = nullptr;
        ++released_;
    }

    // The host reads the interest right after update(), so a malformed one must fail there.
    static void checkInterest(const knp_interest* in) {
        if (in == nullptr) return;
        if (!KNP_HAS_MEMBER(knp_interest, in->struct_size, egress))
            throw ContractError("interest struct_size is smaller than ABI 1.0's");
        for (const knp_direction_interest* d : {in->ingress, in->egress}) {
            if (d == nullptr) continue;
            if (!KNP_HAS_MEMBER(knp_direction_interest, d->struct_size, n_dst_ports))
                throw ContractError("direction interest struct_size is smaller than ABI 1.0's");
            if ((d->n_local && !d->local) || (d->n_remote && !d->remote) || (d->n_dst_ports && !d->dst_ports))
                throw ContractError("direction interest has a count without an array");
            for (size_t i = 0; i < d->n_dst_ports; ++i)
                if (d->dst_ports[i].first > d->dst_ports[i].last)
                    throw ContractError("direction interest has a reversed port range");
        }
    }

    static std::optional<DirectionInterest> owned(const knp_direction_interest* c) {
        if (c == nullptr) return std::nullopt;
        DirectionInterest d;
        d.divertAll = (c->flags & KNP_INTEREST_DIVERT_ALL) != 0;
        d.localPods = (c->flags & KNP_INTEREST_LOCAL_PODS) != 0;
        d.protocols = c->protocols;
        d.local.assign(c->local, c->local + c->n_local);
        d.remote.assign(c->remote, c->remote + c->n_remote);
        d.dstPorts.assign(c->dst_ports, c->dst_ports + c->n_dst_ports);
        return d;
    }

    Evaluation evaluate(uint64_t cap, EvalFn fn, const knp_packet& packet, const knp_pod* src,
                        const knp_pod* dst) const {
        if ((d_->capabilities & cap) == 0)
            throw std::logic_error("the plugin does not claim this direction; the host would not call it");
        if (snapshot_ == nullptr) throw std::logic_error("no snapshot: update() has not returned one");
        knp_eval_args a{};
        a.struct_size = sizeof a;
        a.packet = &packet;
        a.src_pod = src;
        a.dst_pod = dst;
        knp_eval_result out{};
        out.struct_size = sizeof out;
        Evaluation e;
        e.rc = fn(snapshot_, &a, &out);
        if (e.rc != KNP_OK) return e;  // the verdict is meaningless then; onError applies
        if (out.verdict < KNP_VERDICT_NEXT || out.verdict > KNP_VERDICT_DENY)
            throw ContractError("evaluation returned verdict " + std::to_string(out.verdict));
        e.verdict = static_cast<Verdict>(out.verdict);
        e.reason = toView(out.reason);
        e.rule = toView(out.rule);
        return e;
    }

    FakeHost host_;  // declared first: outlives the instance that holds its api pointer
    const knp_plugin_descriptor* d_;
    knp_plugin* plugin_ = nullptr;
    std::vector<Watch> watches_;
    std::vector<PendingEvent> pending_;
    void* snapshot_ = nullptr;
    const knp_interest* interest_ = nullptr;
    size_t released_ = 0;
};

}  // namespace knp::testing

#endif  // KNP_TESTING_HPP
