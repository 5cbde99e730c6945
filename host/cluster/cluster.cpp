#include "cluster/cluster.hpp"

#include <algorithm>
#include <cstring>
#include <set>

#include <boost/json.hpp>
#include <knp/types.hpp>

namespace knp::host {

namespace json = boost::json;

std::optional<CoreKind> coreKindOf(std::string_view apiVersion, std::string_view kind) {
    if (apiVersion != "v1") return std::nullopt;
    if (kind == "Pod") return CoreKind::Pod;
    if (kind == "Namespace") return CoreKind::Namespace;
    if (kind == "Node") return CoreKind::Node;
    return std::nullopt;
}

size_t AddrHash::operator()(const std::array<uint8_t, 16>& a) const noexcept {
    uint64_t lo, hi;
    std::memcpy(&lo, a.data(), 8);
    std::memcpy(&hi, a.data() + 8, 8);
    uint64_t h = hi * 0x9E3779B97F4A7C15ull ^ (lo + 0x7F4A7C159E3779B9ull + (hi << 6) + (hi >> 2));
    return static_cast<size_t>(h ^ (h >> 29));
}

namespace {

std::array<uint8_t, 16> addrKey(const knp_addr& a) {
    std::array<uint8_t, 16> k;
    std::memcpy(k.data(), a.bytes, 16);
    return k;
}

const json::value* path(const json::object& o, std::initializer_list<std::string_view> keys) {
    const json::object* cur = &o;
    const json::value* v = nullptr;
    for (auto k : keys) {
        if (cur == nullptr) return nullptr;
        auto it = cur->find(k);
        if (it == cur->end()) return nullptr;
        v = &it->value();
        cur = v->if_object();
    }
    return v;
}

std::string stringAt(const json::object& o, std::initializer_list<std::string_view> keys) {
    const json::value* v = path(o, keys);
    if (v != nullptr && v->is_string()) return std::string(v->as_string());
    return {};
}

// Reads a string → string map (labels). Non-string values are an error like the API server's.
Status readLabels(const json::object& o, std::initializer_list<std::string_view> keys, const char* field,
                  std::map<std::string, std::string>& out) {
    const json::value* v = path(o, keys);
    if (v == nullptr || v->is_null()) return okStatus();
    const json::object* m = v->if_object();
    if (m == nullptr) return makeError("{}: must be a map of strings", field);
    for (const auto& kv : *m) {
        if (!kv.value().is_string())
            return makeError("{}.{}: label values must be strings (quote it)", field, std::string_view(kv.key()));
        out.emplace(std::string(kv.key()), std::string(kv.value().as_string()));
    }
    return okStatus();
}

Result<knp_addr> readIp(const json::value& v, const std::string& field) {
    if (!v.is_string()) return makeError("{}: must be a string IP address", field);
    auto a = parseAddr(std::string_view(v.as_string()));
    if (!a) return makeError("{}: {:?} is not an IP address", field, std::string_view(v.as_string()));
    return *a;
}

Result<ClusterState::Pod> parsePod(const json::object& o) {
    ClusterState::Pod p;
    p.name = stringAt(o, {"metadata", "name"});
    p.ns = stringAt(o, {"metadata", "namespace"});
    if (p.ns.empty()) p.ns = "default";  // as kubectl does for namespaced objects
    p.uid = stringAt(o, {"metadata", "uid"});
    p.nodeName = stringAt(o, {"spec", "nodeName"});
    p.phase = stringAt(o, {"status", "phase"});
    if (auto s = readLabels(o, {"metadata", "labels"}, "metadata.labels", p.labels); !s) return std::move(s).error();
    if (const json::value* hn = path(o, {"spec", "hostNetwork"}); hn != nullptr && !hn->is_null()) {
        if (!hn->is_bool()) return makeError("spec.hostNetwork: must be a boolean");
        p.hostNetwork = hn->as_bool();
    }
    if (const json::value* cs = path(o, {"spec", "containers"}); cs != nullptr && !cs->is_null()) {
        if (!cs->is_array()) return makeError("spec.containers: must be a list");
        size_t ci = 0;
        for (const auto& c : cs->as_array()) {
            const json::object* co = c.if_object();
            if (co == nullptr) return makeError("spec.containers[{}]: must be an object", ci);
            const json::value* ports = path(*co, {"ports"});
            if (ports != nullptr && !ports->is_null()) {
                if (!ports->is_array()) return makeError("spec.containers[{}].ports: must be a list", ci);
                size_t pi = 0;
                for (const auto& pv : ports->as_array()) {
                    std::string field = fmt::format("spec.containers[{}].ports[{}]", ci, pi);
                    const json::object* po = pv.if_object();
                    if (po == nullptr) return makeError("{}: must be an object", field);
                    const json::value* num = path(*po, {"containerPort"});
                    if (num == nullptr || !num->is_int64() || num->as_int64() < 1 || num->as_int64() > 65535)
                        return makeError("{}.containerPort: must be a number in 1..65535", field);
                    std::string proto = stringAt(*po, {"protocol"});
                    uint8_t pr = proto.empty() ? KNP_PROTO_TCP : parseProtocol(proto);  // API default: TCP
                    if (pr != KNP_PROTO_TCP && pr != KNP_PROTO_UDP && pr != KNP_PROTO_SCTP)
                        return makeError("{}.protocol: {:?} is not TCP, UDP or SCTP", field, proto);
                    p.ports.push_back({stringAt(*po, {"name"}), static_cast<uint16_t>(num->as_int64()), pr});
                    ++pi;
                }
            }
            ++ci;
        }
    }
    if (const json::value* ips = path(o, {"status", "podIPs"}); ips != nullptr && !ips->is_null()) {
        if (!ips->is_array()) return makeError("status.podIPs: must be a list");
        size_t i = 0;
        for (const auto& e : ips->as_array()) {
            const json::value* ip = e.is_object() ? path(e.as_object(), {"ip"}) : nullptr;
            if (ip == nullptr) return makeError("status.podIPs[{}].ip: missing", i);
            auto a = readIp(*ip, fmt::format("status.podIPs[{}].ip", i));
            if (!a) return std::move(a).error();
            p.ips.push_back(*a);
            ++i;
        }
    }
    if (p.ips.empty()) {
        if (const json::value* ip = path(o, {"status", "podIP"}); ip != nullptr && !ip->is_null()) {
            auto a = readIp(*ip, "status.podIP");
            if (!a) return std::move(a).error();
            p.ips.push_back(*a);
        }
    }
    return p;
}

Result<ClusterState::Node> parseNode(const json::object& o) {
    ClusterState::Node n;
    if (auto s = readLabels(o, {"metadata", "labels"}, "metadata.labels", n.labels); !s) return std::move(s).error();
    if (const json::value* as = path(o, {"status", "addresses"}); as != nullptr && as->is_array()) {
        size_t i = 0;
        for (const auto& e : as->as_array()) {
            if (!e.is_object()) return makeError("status.addresses[{}]: must be an object", i);
            std::string type = stringAt(e.as_object(), {"type"});
            if (type == "InternalIP" || type == "ExternalIP") {
                const json::value* addr = path(e.as_object(), {"address"});
                if (addr == nullptr) return makeError("status.addresses[{}].address: missing", i);
                auto a = readIp(*addr, fmt::format("status.addresses[{}].address", i));
                if (!a) return std::move(a).error();
                n.addresses.push_back(*a);
            }
            ++i;
        }
    }
    return n;
}

}  // namespace

Status ClusterState::apply(uint32_t eventType, CoreKind kind, const json::object& object) {
    std::string name = stringAt(object, {"metadata", "name"});
    const char* kindName = kind == CoreKind::Pod ? "Pod" : kind == CoreKind::Node ? "Node" : "Namespace";
    if (name.empty()) return makeError("{}: metadata.name is missing", kindName);
    bool remove = eventType == KNP_EVENT_DELETED;
    switch (kind) {
        case CoreKind::Pod: {
            std::string ns = stringAt(object, {"metadata", "namespace"});
            if (ns.empty()) ns = "default";
            if (remove) {
                pods_.erase({ns, name});
                dirtyPods_.emplace(std::move(ns), std::move(name));
                return okStatus();
            }
            auto p = parsePod(object);
            if (!p) return std::move(p).error().withContext(fmt::format("Pod {}/{}: ", ns, name));
            pods_[{ns, name}] = std::move(*p);
            dirtyPods_.emplace(std::move(ns), std::move(name));
            return okStatus();
        }
        case CoreKind::Namespace: {
            dirtyNamespaces_.insert(name);
            if (remove) {
                namespaces_.erase(name);
                return okStatus();
            }
            Namespace n;
            if (auto s = readLabels(object, {"metadata", "labels"}, "metadata.labels", n.labels); !s)
                return std::move(s).error().withContext(fmt::format("Namespace {}: ", name));
            // The API server sets this immutable label on every namespace; policies rely on it.
            n.labels["kubernetes.io/metadata.name"] = name;
            namespaces_[name] = std::move(n);
            return okStatus();
        }
        case CoreKind::Node: {
            dirtyNodes_.insert(name);
            if (remove) {
                nodes_.erase(name);
                return okStatus();
            }
            auto n = parseNode(object);
            if (!n) return std::move(n).error().withContext(fmt::format("Node {}: ", name));
            nodes_[name] = std::move(*n);
            return okStatus();
        }
    }
    return okStatus();
}

void ClusterSnapshot::Labels::build(const std::map<std::string, std::string>& m) {
    store.assign(m.begin(), m.end());  // std::map iterates sorted by key
    view.clear();
    view.reserve(store.size());
    for (const auto& [k, v] : store) view.push_back({{k.data(), k.size()}, {v.data(), v.size()}});
}

std::shared_ptr<const ClusterSnapshot> ClusterState::build(const std::string& localNode) {
    using NamespaceEntry = ClusterSnapshot::NamespaceEntry;
    using NodeEntry = ClusterSnapshot::NodeEntry;
    using PodEntry = ClusterSnapshot::PodEntry;
    auto snap = std::make_shared<ClusterSnapshot>();
    snap->localNode_ = localNode;
    snap->generation_ = ++generation_;
    // Entries are immutable and shared between snapshots: only what an event touched since the
    // last build (a pod, or the namespace or node whose facts its view carries) is built again,
    // so a build costs allocations for the changes and index inserts for the rest. (Building
    // every entry again cost ~0.5 s at 100,000 pods.)
    auto namespaceEntry = [&](const std::string& name) -> const std::shared_ptr<const NamespaceEntry>& {
        auto& cached = nsEntries_[name];
        if (cached) return cached;  // dirty ones were dropped below, before the first call
        auto e = std::make_shared<NamespaceEntry>();
        e->name = name;
        auto nit = namespaces_.find(name);
        // A namespace the watch has not (yet) delivered still has its name label.
        e->labels.build(nit != namespaces_.end()
                            ? nit->second.labels
                            : std::map<std::string, std::string>{{"kubernetes.io/metadata.name", name}});
        cached = std::move(e);
        return cached;
    };
    for (auto it = nodeEntries_.begin(); it != nodeEntries_.end();)
        it = nodes_.count(it->first) == 0 ? nodeEntries_.erase(it) : std::next(it);
    for (const std::string& name : dirtyNamespaces_) nsEntries_.erase(name);
    for (const auto& [name, n] : nodes_) {
        auto& cached = nodeEntries_[name];
        if (!cached || dirtyNodes_.count(name) != 0) {
            auto e = std::make_shared<NodeEntry>();
            e->name = name;
            e->labels.build(n.labels);
            e->addresses = n.addresses;
            cached = std::move(e);
        }
        for (const auto& a : n.addresses) {
            snap->nodeAddresses_.insert(addrKey(a));
            if (!localNode.empty() && name == localNode) snap->localAddresses_.insert(addrKey(a));
        }
        snap->nodes_.push_back(cached);
    }

    const std::shared_ptr<const NamespaceEntry>* ns = nullptr;
    snap->pods_.reserve(pods_.size());
    snap->byIp_.reserve(pods_.size() * 2);
    for (auto& [key, p] : pods_) {
        if (p.phase == "Succeeded" || p.phase == "Failed") continue;  // terminal pods own no IP
        // The cached entry is valid until an event touches the pod (which drops it), its
        // namespace or its node (a new node too: apply marks it).
        if (!p.entry || dirtyNamespaces_.count(key.first) != 0 || dirtyNodes_.count(p.nodeName) != 0) {
            // pods_ iterates namespace by namespace: look each one up once.
            if (ns == nullptr || (*ns)->name != key.first) ns = &namespaceEntry(key.first);
            auto nodeIt = nodeEntries_.find(p.nodeName);
            const NodeEntry* node = nodeIt != nodeEntries_.end() ? nodeIt->second.get() : nullptr;
            auto e = std::make_shared<PodEntry>();
            e->name = p.name;
            e->ns = key.first;
            e->uid = p.uid;
            e->nodeName = p.nodeName;
            e->nsRef = *ns;
            if (node != nullptr) e->nodeRef = nodeIt->second;
            // A pod written without status in a state file is taken as running.
            e->running = p.phase.empty() || p.phase == "Running";
            e->labels.build(p.labels);
            e->portNames.reserve(p.ports.size());
            for (const auto& port : p.ports) e->portNames.push_back(port.name);
            for (size_t i = 0; i < p.ports.size(); ++i) {
                const std::string& n = e->portNames[i];
                e->ports.push_back({{n.data(), n.size()}, p.ports[i].port, p.ports[i].protocol, 0});
            }
            e->ips = p.ips;

            knp_pod& v = e->view;
            v.struct_size = sizeof v;
            v.flags = p.hostNetwork ? KNP_POD_HOST_NETWORK : 0;
            v.name = {e->name.data(), e->name.size()};
            v.pod_namespace = {e->ns.data(), e->ns.size()};
            v.uid = {e->uid.data(), e->uid.size()};
            v.labels = e->labels.view.data();
            v.n_labels = e->labels.view.size();
            v.namespace_labels = (*ns)->labels.view.data();
            v.n_namespace_labels = (*ns)->labels.view.size();
            v.node_name = {e->nodeName.data(), e->nodeName.size()};
            if (node != nullptr) {
                v.node_labels = node->labels.view.data();
                v.n_node_labels = node->labels.view.size();
                v.node_addresses = node->addresses.data();
                v.n_node_addresses = node->addresses.size();
            }
            v.container_ports = e->ports.data();
            v.n_container_ports = e->ports.size();
            v.ips = e->ips.data();
            v.n_ips = e->ips.size();
            p.entry = std::move(e);
        }
        const PodEntry* raw = p.entry.get();
        // hostNetwork pods use their node's IP: that IP is the node's, never a pod's.
        bool local = !localNode.empty() && p.nodeName == localNode;
        for (const auto& ip : raw->ips) {
            if (local) snap->localAddresses_.insert(addrKey(ip));
            if (local && !p.hostNetwork) snap->localPodIps_.push_back(ip);
        }
        if (p.hostNetwork) {
            for (const auto& ip : raw->ips) snap->nodeAddresses_.insert(addrKey(ip));
        } else {
            for (const auto& ip : raw->ips) {
                auto [it, inserted] = snap->byIp_.emplace(addrKey(ip), raw);
                // Two pods claiming one IP (a stale pod not yet gone): the running one wins.
                if (!inserted && !it->second->running && raw->running) it->second = raw;
            }
        }
        snap->pods_.push_back(p.entry);
    }
    recordChanges(*snap);
    last_ = snap;
    return snap;
}

void ClusterState::recordChanges(ClusterSnapshot& next) {
    // The pods whose view may differ from the previous snapshot's: those touched by an event,
    // and every pod of a touched namespace or node (the view carries their labels/addresses).
    std::set<std::pair<std::string_view, std::string_view>> keys;
    for (const auto& [ns, name] : dirtyPods_) keys.emplace(ns, name);
    if (!dirtyNamespaces_.empty() || !dirtyNodes_.empty()) {
        for (const ClusterSnapshot* snap : {last_.get(), static_cast<const ClusterSnapshot*>(&next)}) {
            if (snap == nullptr) continue;
            for (const auto& p : snap->pods_)
                if (dirtyNamespaces_.count(p->ns) != 0 || dirtyNodes_.count(p->nodeName) != 0)
                    keys.emplace(p->ns, p->name);
        }
    }
    if (last_) {
        auto& d = next.delta_;
        d.emplace();
        d->baseGeneration = last_->generation_;
        d->base = last_;
        for (const auto& [ns, name] : keys) {
            knp_pod_change c{};
            c.struct_size = sizeof c;
            c.before = last_->indexed(ns, name);
            c.after = next.indexed(ns, name);
            if (c.before != nullptr || c.after != nullptr) d->changes.push_back(c);
        }
        d->pointers.reserve(d->changes.size());
        for (const knp_pod_change& c : d->changes) d->pointers.push_back(&c);
        // The previous snapshot no longer needs its own base: one step of history at most.
        last_->delta_.reset();
    }
    dirtyPods_.clear();
    dirtyNamespaces_.clear();
    dirtyNodes_.clear();
}

const ClusterSnapshot::PodEntry* ClusterSnapshot::entry(std::string_view ns, std::string_view name) const noexcept {
    // pods_ is in (namespace, name) order, as ClusterState keeps its pods.
    auto it = std::lower_bound(pods_.begin(), pods_.end(), std::pair{ns, name}, [](const auto& e, const auto& key) {
        return std::pair<std::string_view, std::string_view>(e->ns, e->name) < key;
    });
    return it != pods_.end() && (*it)->ns == ns && (*it)->name == name ? it->get() : nullptr;
}

const knp_pod* ClusterSnapshot::indexed(std::string_view ns, std::string_view name) const noexcept {
    const PodEntry* e = entry(ns, name);
    return e == nullptr || e->ips.empty() ? nullptr : &e->view;
}

const std::vector<const knp_pod_change*>* ClusterSnapshot::podChangesSince(uint64_t generation) const noexcept {
    return delta_ && delta_->baseGeneration == generation ? &delta_->pointers : nullptr;
}

const knp_pod* ClusterSnapshot::lookup(const knp_addr& ip) const noexcept {
    auto it = byIp_.find(addrKey(ip));
    return it == byIp_.end() ? nullptr : &it->second->view;
}

bool ClusterSnapshot::isLocal(const knp_addr& ip) const noexcept { return localAddresses_.count(addrKey(ip)) != 0; }

bool ClusterSnapshot::isNodeAddress(const knp_addr& ip) const noexcept {
    return nodeAddresses_.count(addrKey(ip)) != 0;
}

const knp_pod* ClusterSnapshot::find(std::string_view ns, std::string_view name) const noexcept {
    const PodEntry* e = entry(ns, name);
    return e == nullptr ? nullptr : &e->view;
}

int32_t ClusterSnapshot::forEachPod(bool localOnly, int32_t (*fn)(void*, const knp_pod*), void* user) const {
    for (const auto& p : pods_) {
        if (p->ips.empty()) continue;
        if (localOnly && p->nodeName != localNode_) continue;
        if (int32_t rc = fn(user, &p->view); rc != 0) return rc;
    }
    return 0;
}

}  // namespace knp::host
