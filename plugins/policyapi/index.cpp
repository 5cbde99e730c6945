#include "policyapi/index.hpp"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "common/hash.hpp"
#include "common/pod_tag.hpp"

namespace knp::papi {

namespace {

std::span<const knp_label> labelsOf(const knp_pod& p) noexcept { return {p.labels, p.n_labels}; }
std::span<const knp_label> nsLabelsOf(const knp_pod& p) noexcept { return {p.namespace_labels, p.n_namespace_labels}; }

bool sortedContains(const std::vector<uint32_t>& v, uint32_t x) noexcept {
    return v.size() <= 8 ? std::find(v.begin(), v.end(), x) != v.end() : std::binary_search(v.begin(), v.end(), x);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The pod walk
// ---------------------------------------------------------------------------------------------

std::shared_ptr<const ClusterView> walkCluster(const knp::Host& host, std::string_view nodeName) {
    auto cv = std::make_shared<ClusterView>();
    std::unordered_map<std::string, uint32_t> nsByName;
    std::unordered_map<std::string, uint32_t> nodeByName;
    std::unordered_multimap<uint64_t, uint32_t> idByHash;
    uint32_t ns = kNone;
    host.forEachPod(false, [&](knp::PodView p) {
        // Nodes are learnt from their pods' views (hostNetwork pods included): what `nodes`
        // peers select, by the node's labels, and the addresses they stand for.
        if (!p.nodeName().empty() && nodeByName.find(std::string(p.nodeName())) == nodeByName.end()) {
            nodeByName.emplace(std::string(p.nodeName()), static_cast<uint32_t>(cv->nodes.size()));
            cv->nodes.push_back(
                std::make_unique<ClusterView::Node>(std::string(p.nodeName()), p.nodeLabels(), p.nodeAddresses()));
        }
        if (p.hostNetwork() || p.ips().empty()) return;
        if (ns == kNone || cv->namespaces[ns].name != p.podNamespace()) {
            auto [it, fresh] = nsByName.emplace(std::string(p.podNamespace()), cv->namespaces.size());
            if (fresh) {
                ClusterView::Namespace n;
                n.name = std::string(p.podNamespace());
                n.labels = std::make_shared<const policy::OwnedLabels>(p.namespaceLabels());
                cv->namespaces.push_back(std::move(n));
            }
            ns = it->second;
        }
        uint64_t h = policy::Hasher().u64(ns).labels(p.labels()).done();
        uint32_t id = kNone;
        for (auto [it, end] = idByHash.equal_range(h); it != end; ++it) {
            const ClusterView::Identity& c = *cv->identities[it->second];
            if (c.ns == ns && policy::labelsEqual(c.labels.view(), p.labels())) {
                id = it->second;
                break;
            }
        }
        if (id == kNone) {
            id = static_cast<uint32_t>(cv->identities.size());
            cv->identities.push_back(std::make_unique<ClusterView::Identity>(ns, p.labels()));
            cv->namespaces[ns].identities.push_back(id);
            idByHash.emplace(h, id);
        }
        bool local = !nodeName.empty() && p.nodeName() == nodeName;
        cv->pods.push_back({id, policy::podTagOf(*p.raw()), local, {p.ips().begin(), p.ips().end()}});
    });
    return cv;
}

// ---------------------------------------------------------------------------------------------
// Building the index
// ---------------------------------------------------------------------------------------------

namespace {

bool sameNodes(const ClusterView& a, const ClusterView& b) {
    if (a.nodes.size() != b.nodes.size()) return false;
    for (size_t i = 0; i < a.nodes.size(); ++i) {
        const ClusterView::Node &x = *a.nodes[i], &y = *b.nodes[i];
        if (x.name != y.name || !policy::labelsEqual(x.labels.view(), y.labels.view()) ||
            x.addresses.size() != y.addresses.size() ||
            !std::equal(x.addresses.begin(), x.addresses.end(), y.addresses.begin(),
                        [](const knp_addr& p, const knp_addr& q) { return p == q; }))
            return false;
    }
    return true;
}

// The rules of `policies` in one direction, in order, inverted for evaluation.
std::shared_ptr<const RuleTable> makeTable(std::vector<std::shared_ptr<const CompiledPolicy>> policies, int dir) {
    auto t = std::make_shared<RuleTable>();
    std::vector<policy::IpBlock> blocks;
    for (const auto& cp : policies) {
        for (const CompiledRule& r : cp->rules[dir]) {
            auto at = static_cast<uint32_t>(t->rules.size());
            t->rules.push_back(&r);
            for (uint32_t peer : r.peers) t->byPeer.push_back(uint64_t(peer) << 32 | at);
            if (r.matchAll) t->matchingAll.push_back(at);
            if (!r.addresses.empty()) {
                t->byAddress.push_back(at);
                blocks.insert(blocks.end(), r.blocks.begin(), r.blocks.end());
            }
        }
    }
    std::sort(t->byPeer.begin(), t->byPeer.end());
    t->anyAddress = policy::CidrSet::of(blocks);
    t->policies = std::move(policies);
    return t;
}

}  // namespace

uint32_t Model::internPeer(const PeerSpec& p) {
    bool pods = p.kind == PeerSpec::Kind::Pods;
    std::string key = (pods ? "P" : "N") + p.namespaceSelector.canonical() + "\n" +
                      (pods ? p.podSelector.canonical() : std::string());
    auto [it, fresh] = peerByKey_.emplace(std::move(key), static_cast<uint32_t>(peers_.size()));
    if (fresh) {
        auto peer = std::make_shared<Peer>();
        peer->podsPeer = pods;
        peer->namespaceSelector = p.namespaceSelector;
        peer->podSelector = p.podSelector;
        peers_.push_back(std::move(peer));
        freshPeers_.push_back(it->second);
    }
    return it->second;
}

std::shared_ptr<const CompiledPolicy> Model::compile(const std::shared_ptr<const PolicySpec>& spec) {
    auto cp = std::make_shared<CompiledPolicy>();
    cp->spec = spec;
    for (int dir = 0; dir < 2; ++dir) {
        const std::vector<RuleSpec>& rules = dir == 0 ? spec->ingress : spec->egress;
        std::string_view dirName = dir == 0 ? "ingress" : "egress";
        for (size_t i = 0; i < rules.size(); ++i) {
            const RuleSpec& r = rules[i];
            CompiledRule c;
            c.action = r.action;
            bool failOpen = r.action == Action::Accept;  // fail closed = match nothing for Accept
            if (r.allPorts || (r.unknownPort && !failOpen)) {
                c.ports = policy::PortSet::all();
            } else {
                c.ports = policy::PortSet::of(r.ports);
            }
            std::vector<policy::IpBlock> blocks;
            for (const PeerSpec& p : r.peers) {
                switch (p.kind) {
                    case PeerSpec::Kind::Namespaces:
                    case PeerSpec::Kind::Pods:
                        c.peers.push_back(internPeer(p));
                        break;
                    case PeerSpec::Kind::Networks:
                        for (const knp_cidr& n : p.networks) blocks.push_back({n, {}});
                        break;
                    case PeerSpec::Kind::Nodes:
                        for (const auto& node : cluster_->nodes)
                            if (p.nodeSelector.matches(node->labels.view()))
                                for (const knp_addr& a : node->addresses) blocks.push_back({policy::hostPrefix(a), {}});
                        break;
                    case PeerSpec::Kind::DomainNames:
                        break;  // needs DNS observation: matches nothing until then
                    case PeerSpec::Kind::Unknown:
                        if (!failOpen) c.matchAll = true;
                        break;
                }
            }
            std::sort(c.peers.begin(), c.peers.end());
            c.peers.erase(std::unique(c.peers.begin(), c.peers.end()), c.peers.end());
            c.addresses = policy::CidrSet::of(blocks);
            c.blocks = std::move(blocks);
            std::string ruleName = r.name.empty() ? std::string() : " \"" + r.name + "\"";
            c.reason = spec->key + " " + std::string(dirName) + " rule " + std::to_string(i) + ruleName + ": " +
                       std::string(actionName(r.action));
            if (r.action == Action::Pass)
                c.reason += spec->tier == Tier::Admin ? " (the rest of the admin tier is skipped)"
                                                      : " (to the default: allowed)";
            c.id = spec->name + "/" + std::string(dirName) + "/" + std::to_string(i);
            cp->rules[dir].push_back(std::move(c));
        }
    }
    return cp;
}

// Which identities each of `peers` holds: one namespaceSelector test per distinct selector and
// namespace, then podSelectors over that namespace's identities.
void Model::computeMembers(const std::vector<uint32_t>& peers) {
    std::map<std::string, std::vector<uint32_t>> byNsSelector;
    for (uint32_t id : peers) byNsSelector[peers_[id]->namespaceSelector.canonical()].push_back(id);
    std::vector<uint32_t> touched;
    for (const auto& [text, ids] : byNsSelector) {
        const policy::LabelSelector& nsSel = peers_[ids[0]]->namespaceSelector;
        for (const ClusterView::Namespace& ns : cluster_->namespaces) {
            if (!nsSel.matches(ns.labels->view())) continue;
            for (uint32_t pid : ids) {
                const Peer& peer = *peers_[pid];
                for (uint32_t ident : ns.identities) {
                    if (peer.podsPeer && !peer.podSelector.matches(cluster_->identities[ident]->labels.view()))
                        continue;
                    std::vector<uint32_t>& list = identityPeers_[ident];
                    if (list.empty() || list.back() < pid) {
                        list.push_back(pid);
                    } else {
                        list.insert(std::lower_bound(list.begin(), list.end(), pid), pid);
                    }
                }
            }
        }
    }
}

// The identities a subject selects, computed once per distinct subject and ClusterView.
const std::vector<uint32_t>& Model::subjectMembers(const PolicySpec& s) {
    std::string key = s.subjectIsNamespaces ? "N" + s.subjectNamespaces.canonical()
                                            : "P" + s.subjectNamespaces.canonical() + "\n" + s.subjectPods.canonical();
    auto [it, fresh] = subjectMembers_.try_emplace(std::move(key));
    if (!fresh) return it->second;
    for (const ClusterView::Namespace& ns : cluster_->namespaces) {
        if (!s.subjectNamespaces.matches(ns.labels->view())) continue;
        for (uint32_t ident : ns.identities)
            if (s.subjectIsNamespaces || s.subjectPods.matches(cluster_->identities[ident]->labels.view()))
                it->second.push_back(ident);
    }
    return it->second;
}

// Which policies select each identity, then its RuleTable per direction: one per distinct list
// of policies, kept across updates while those policies are unchanged.
void Model::computeSubjects(Index& idx) {
    const auto& policies = idx.policies;
    std::vector<std::vector<uint32_t>> selecting(cluster_->identities.size());
    for (uint32_t i = 0; i < policies.size(); ++i)
        for (uint32_t ident : subjectMembers(*policies[i]->spec)) selecting[ident].push_back(i);  // in order
    std::map<std::vector<const CompiledPolicy*>, std::shared_ptr<const RuleTable>> tables[2];
    std::map<const RuleTable*, uint32_t> tableIds;
    std::vector<const CompiledPolicy*> key;
    for (uint32_t ident = 0; ident < selecting.size(); ++ident) {
        for (int dir = 0; dir < 2; ++dir) {
            key.clear();
            for (uint32_t pos : selecting[ident])
                if (!policies[pos]->rules[dir].empty()) key.push_back(policies[pos].get());
            if (key.empty()) continue;
            auto it = tables[dir].find(key);
            if (it == tables[dir].end()) {
                auto old = tables_[dir].find(key);
                std::shared_ptr<const RuleTable> t;
                if (old != tables_[dir].end()) {
                    t = old->second;
                } else {
                    std::vector<std::shared_ptr<const CompiledPolicy>> owners;
                    for (uint32_t pos : selecting[ident])
                        if (!policies[pos]->rules[dir].empty()) owners.push_back(policies[pos]);
                    t = makeTable(std::move(owners), dir);
                }
                it = tables[dir].emplace(key, std::move(t)).first;
            }
            auto [id, fresh] = tableIds.emplace(it->second.get(), static_cast<uint32_t>(idx.tables.size()));
            if (fresh) idx.tables.push_back(it->second);
            idx.identities[ident].tables[dir] = id->second;
        }
    }
    tables_[0] = std::move(tables[0]);
    tables_[1] = std::move(tables[1]);
}

std::shared_ptr<const Index> Model::build(const std::vector<std::shared_ptr<const PolicySpec>>& specs,
                                          std::shared_ptr<const ClusterView> cluster) {
    if (cluster != cluster_) {
        // Pods, namespaces or nodes changed: peer members, subjects and the IP map start over.
        // Compiled policies and their rule tables depend on the nodes only (`nodes` peers'
        // addresses), so they survive a change that leaves the nodes alone.
        if (!cluster_ || !sameNodes(*cluster_, *cluster)) {
            compiled_.clear();
            tables_[0].clear();
            tables_[1].clear();
        }
        cluster_ = std::move(cluster);
        subjectMembers_.clear();
        identityPeers_.assign(cluster_->identities.size(), {});
        freshPeers_.clear();
        for (uint32_t id = 0; id < peers_.size(); ++id) freshPeers_.push_back(id);
        auto ipMap = std::make_shared<policy::AddrMap>();
        for (const ClusterView::Pod& p : cluster_->pods) {
            uint64_t entry = policy::packPodEntry(p.identity, p.tag);
            // Two live pods claiming one address: the first keeps it; the other is judged from
            // its view (its tag does not match).
            for (const knp_addr& a : p.ips)
                if (ipMap->find(a) == policy::AddrMap::kNone) ipMap->set(a, entry);
        }
        ipMap_ = std::move(ipMap);
    }
    auto idx = std::make_shared<Index>();
    idx->cluster = cluster_;
    idx->ipMap = ipMap_;
    std::unordered_map<const PolicySpec*, std::shared_ptr<const CompiledPolicy>> compiled;
    idx->policies.reserve(specs.size());
    for (const auto& s : specs) {
        auto it = compiled_.find(s.get());
        std::shared_ptr<const CompiledPolicy> c = it != compiled_.end() ? it->second : compile(s);
        compiled.emplace(s.get(), c);
        idx->policies.push_back(std::move(c));
    }
    compiled_ = std::move(compiled);
    computeMembers(freshPeers_);
    freshPeers_.clear();
    idx->peers = peers_;
    idx->identities.resize(cluster_->identities.size());
    for (size_t i = 0; i < idx->identities.size(); ++i) idx->identities[i].peers = identityPeers_[i];
    computeSubjects(*idx);
    for (const ClusterView::Pod& p : cluster_->pods)
        for (int dir = 0; dir < 2; ++dir)
            if (p.local && idx->identities[p.identity].tables[dir] != kNone) ++idx->localSubjects[dir];
    return idx;
}

knp::Interest interestOf(const Index& index) {
    knp::Interest in;
    for (const ClusterView::Pod& p : index.cluster->pods) {
        if (!p.local) continue;
        const IdentityIndex& i = index.identities[p.identity];
        for (const knp_addr& a : p.ips) {
            // Only addresses this pod really holds in the map (a duplicate is judged elsewhere).
            if (i.tables[0] != kNone) in.ingress.local.push_back(policy::hostPrefix(a));
            if (i.tables[1] != kNone) in.egress.local.push_back(policy::hostPrefix(a));
        }
    }
    return in;
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

Snapshot::End Snapshot::resolve(const knp_pod* pod, const knp_addr& ip) const noexcept {
    End e;
    // hostNetwork pods are node traffic, never a pod for subjects or selector peers; the host
    // passes NULL for them already, this only guards a host that does not.
    if (pod == nullptr || (pod->flags & KNP_POD_HOST_NETWORK) != 0) return e;
    e.pod = pod;
    uint64_t entry = index_->ipMap->find(ip);
    if (entry != policy::AddrMap::kNone && static_cast<uint32_t>(entry >> 32) == policy::podTagOf(*pod)) {
        e.identity = &index_->identities[static_cast<uint32_t>(entry)];
        return e;
    }
    host_.add(missMetric_, 1);  // neither blocks nor allocates (knp_host_api)
    return e;
}

bool Snapshot::selectorPeersMatch(const CompiledRule& r, const End& remote) const noexcept {
    if (remote.pod == nullptr) return false;
    for (uint32_t peer : r.peers) {
        if (remote.identity != nullptr ? sortedContains(remote.identity->peers, peer)
                                       : index_->peers[peer]->matches(nsLabelsOf(*remote.pod), labelsOf(*remote.pod)))
            return true;
    }
    return false;
}

bool Snapshot::ruleMatches(const CompiledRule& r, const End& remote, const knp_addr& remoteIp, uint8_t proto,
                           uint16_t port, std::span<const knp_container_port> dstPorts) const noexcept {
    if (!r.ports.matches(proto, port, dstPorts)) return false;
    if (r.matchAll) return true;
    // networks match pod and node addresses too (§2.2); selector peers match pods only.
    if (!r.addresses.empty() && r.addresses.contains(remoteIp)) return true;
    return selectorPeersMatch(r, remote);
}

knp::Decision Snapshot::decide(int dir, const End& local, const End& remote, const knp_addr& remoteIp,
                               const knp::PacketView& packet,
                               std::span<const knp_container_port> dstPorts) const noexcept {
    uint8_t proto = packet.protocol();
    uint16_t port = packet.hasPorts() ? packet.dstPort() : 0;
    const CompiledRule* hit = nullptr;
    if (local.identity != nullptr) {
        uint32_t t = local.identity->tables[dir];
        if (t == kNone) return knp::Decision::next();
        const RuleTable& table = *index_->tables[t];
        uint32_t best = kNone;
        if (remote.identity != nullptr) {
            // The rules naming one of the remote end's peers, lowest position first.
            for (uint32_t peer : remote.identity->peers) {
                auto it = std::lower_bound(table.byPeer.begin(), table.byPeer.end(), uint64_t(peer) << 32);
                for (; it != table.byPeer.end() && (*it >> 32) == peer; ++it) {
                    auto pos = static_cast<uint32_t>(*it);
                    if (pos >= best) break;
                    if (table.rules[pos]->ports.matches(proto, port, dstPorts)) {
                        best = pos;
                        break;
                    }
                }
            }
        } else if (remote.pod != nullptr) {
            for (uint32_t pos = 0; pos < table.rules.size(); ++pos) {
                const CompiledRule& r = *table.rules[pos];
                if (r.ports.matches(proto, port, dstPorts) && selectorPeersMatch(r, remote)) {
                    best = pos;
                    break;
                }
            }
        }
        if (table.anyAddress.contains(remoteIp)) {
            for (uint32_t pos : table.byAddress) {
                if (pos >= best) break;
                const CompiledRule& r = *table.rules[pos];
                if (r.addresses.contains(remoteIp) && r.ports.matches(proto, port, dstPorts)) {
                    best = pos;
                    break;
                }
            }
        }
        for (uint32_t pos : table.matchingAll) {
            if (pos >= best) break;
            if (table.rules[pos]->ports.matches(proto, port, dstPorts)) {
                best = pos;
                break;
            }
        }
        if (best != kNone) hit = table.rules[best];
    } else {
        // The slow path: a pod the index does not know as it is now, judged from its view.
        const knp_pod& p = *local.pod;
        for (const auto& policyPtr : index_->policies) {
            const CompiledPolicy& cp = *policyPtr;
            const PolicySpec& s = *cp.spec;
            if (cp.rules[dir].empty() || !s.subjectNamespaces.matches(nsLabelsOf(p))) continue;
            if (!s.subjectIsNamespaces && !s.subjectPods.matches(labelsOf(p))) continue;
            for (const CompiledRule& r : cp.rules[dir]) {
                if (ruleMatches(r, remote, remoteIp, proto, port, dstPorts)) {
                    hit = &r;
                    break;
                }
            }
            if (hit != nullptr) break;
        }
    }
    if (hit == nullptr) return knp::Decision::next();
    switch (hit->action) {
        case Action::Accept:
            return knp::Decision::accept(hit->reason, hit->id);
        case Action::Deny:
            return knp::Decision::deny(hit->reason, hit->id);
        case Action::Pass:
            break;
    }
    return knp::Decision{knp::Verdict::Next, hit->reason, hit->id};
}

knp::Decision Snapshot::evaluateIngress(const knp::EvalArgs& a) const noexcept {
    knp::PacketView packet = a.packet();
    // A pod's traffic to its own address is not subject (ClusterNetworkPolicy docs, §1.7).
    if (packet.src() == packet.dst()) return knp::Decision::next();
    End local = resolve(a.raw()->dst_pod, packet.dst());
    if (local.pod == nullptr) return knp::Decision::next();
    End remote = resolve(a.raw()->src_pod, packet.src());
    // Named ports resolve on the destination: here the subject pod itself.
    return decide(0, local, remote, packet.src(), packet, {local.pod->container_ports, local.pod->n_container_ports});
}

knp::Decision Snapshot::evaluateEgress(const knp::EvalArgs& a) const noexcept {
    knp::PacketView packet = a.packet();
    if (packet.src() == packet.dst()) return knp::Decision::next();
    End local = resolve(a.raw()->src_pod, packet.src());
    if (local.pod == nullptr) return knp::Decision::next();
    End remote = resolve(a.raw()->dst_pod, packet.dst());
    std::span<const knp_container_port> dstPorts;
    if (remote.pod != nullptr) dstPorts = {remote.pod->container_ports, remote.pod->n_container_ports};
    return decide(1, local, remote, packet.dst(), packet, dstPorts);
}

}  // namespace knp::papi
