#include "policyapi/index.hpp"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "common/free_ids.hpp"
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
// The cluster: a full walk, or the host's list of changed pods
// ---------------------------------------------------------------------------------------------

namespace {

bool indexed(knp::PodView p) noexcept { return p && !p.hostNetwork() && !p.ips().empty(); }

std::string podKey(knp::PodView p) {
    std::string key(p.podNamespace());
    key += '/';
    key += p.name();
    return key;
}

uint64_t identityHash(uint32_t ns, std::span<const knp_label> nsLabels, std::span<const knp_label> labels) noexcept {
    return policy::Hasher().u64(ns).labels(nsLabels).labels(labels).done();
}

}  // namespace

bool Model::Node::same(std::span<const knp_label> l, std::span<const knp_addr> a) const noexcept {
    return policy::labelsEqual(labels.view(), l) && addresses.size() == a.size() &&
           std::equal(addresses.begin(), addresses.end(), a.begin(),
                      [](const knp_addr& x, const knp_addr& y) { return x == y; });
}

// The namespace record of `name`; a new one takes `labels`, an existing one adopts them when
// `adopt` and they differ (a namespace relabel lists every pod of the namespace).
uint32_t Model::namespaceOf(std::string_view name, std::span<const knp_label> labels, bool adopt) {
    auto [it, fresh] = nsByName_.try_emplace(std::string(name), static_cast<uint32_t>(namespaces_.size()));
    if (fresh) {
        Namespace n;
        n.name = std::string(name);
        n.labels = std::make_shared<const policy::OwnedLabels>(labels);
        namespaces_.push_back(std::move(n));
    } else if (adopt && !policy::labelsEqual(namespaces_[it->second].labels->view(), labels)) {
        Namespace& n = namespaces_[it->second];
        n.labels = std::make_shared<const policy::OwnedLabels>(labels);
        n.stale = static_cast<uint32_t>(n.identities.size());
    }
    return it->second;
}

// One more pod of (namespace, its current labels, `labels`); a new identity is pending.
uint32_t Model::internIdentity(uint32_t ns, std::span<const knp_label> labels) {
    Namespace& n = namespaces_[ns];
    uint64_t h = identityHash(ns, n.labels->view(), labels);
    for (auto [it, end] = identByHash_.equal_range(h); it != end; ++it) {
        Identity& c = idents_[it->second];
        if (c.ns == ns && policy::labelsEqual(c.labels->view(), labels) &&
            (c.nsLabels == n.labels || policy::labelsEqual(c.nsLabels->view(), n.labels->view()))) {
            ++c.pods;
            return it->second;
        }
    }
    uint32_t id = policy::reuseOrGrow(freeIdents_, idents_.size(), [&](size_t size) {
        idents_.resize(size);
        identities_.resize(size);
    });
    Identity& c = idents_[id];
    c.ns = ns;
    c.nsLabels = n.labels;
    c.labels = std::make_unique<const policy::OwnedLabels>(labels);
    c.hash = h;
    c.pods = 1;
    c.nsPos = static_cast<uint32_t>(n.identities.size());
    c.alive = true;
    n.identities.push_back(id);
    identByHash_.emplace(h, id);
    pending_.push_back(id);
    return id;
}

// An identity left without pods: its tables go back, its id is free.
void Model::buryIdentity(uint32_t ident) {
    Identity& c = idents_[ident];
    for (uint32_t t : identities_[ident].tables)
        if (t != kNone) releaseTable(t);
    identities_[ident] = IdentityIndex{};
    Namespace& n = namespaces_[c.ns];
    if (c.nsLabels != n.labels) --n.stale;
    policy::swapRemove(n.identities, c.nsPos, [&](uint32_t moved, uint32_t pos) { idents_[moved].nsPos = pos; });
    policy::eraseEntry(identByHash_, c.hash, ident);
    c = Identity{};
    freeIdents_.push_back(ident);
}

void Model::walk(const knp::Host& host, std::string_view nodeName) {
    std::map<std::string, std::unique_ptr<Node>, std::less<>> oldNodes = std::move(nodes_);
    nodes_.clear();
    namespaces_.clear();
    nsByName_.clear();
    idents_.clear();
    freeIdents_.clear();
    identByHash_.clear();
    identities_.clear();
    locals_.clear();
    pending_.clear();
    pods_ = 0;
    lostClaims_ = 0;
    auto ipMap = std::make_shared<policy::AddrMap>();
    uint32_t ns = kNone;
    Node* node = nullptr;  // the previous pod's: the host's order keeps a node's pods together
    std::string_view nodeOf;
    host.forEachPod(false, [&](knp::PodView p) {
        // Nodes are learnt from their pods' views (hostNetwork pods included): what `nodes`
        // peers select, by the node's labels, and the addresses they stand for.
        if (!p.nodeName().empty()) {
            if (node == nullptr || p.nodeName() != nodeOf) {
                auto it = nodes_.find(p.nodeName());
                if (it == nodes_.end())
                    it = nodes_
                             .emplace(std::string(p.nodeName()),
                                      std::make_unique<Node>(p.nodeLabels(), p.nodeAddresses()))
                             .first;
                node = it->second.get();
                nodeOf = it->first;
            }
            ++node->pods;
        }
        // hostNetwork pods are never subjects nor selector peers (§2.2, §5 #31).
        if (!indexed(p)) return;
        // The namespace's labels are its first pod's (the host shares one array per namespace).
        if (ns == kNone || namespaces_[ns].name != p.podNamespace())
            ns = namespaceOf(p.podNamespace(), p.namespaceLabels(), false);
        uint32_t id = internIdentity(ns, p.labels());
        ++pods_;
        uint64_t entry = policy::packPodEntry(id, policy::podTagOf(*p.raw()));
        // Two live pods claiming one address: the first keeps it; the other is judged from its
        // view (its tag does not match).
        for (const knp_addr& a : p.ips()) {
            if (ipMap->find(a) == policy::AddrMap::kNone) {
                ipMap->set(a, entry);
            } else {
                ++lostClaims_;
            }
        }
        if (!nodeName.empty() && p.nodeName() == nodeName)
            locals_[podKey(p)] = LocalPod{id, {p.ips().begin(), p.ips().end()}};
    });
    ipMap_ = std::move(ipMap);
    pending_.clear();  // build() computes every identity
    bool sameNodes = walked_ && oldNodes.size() == nodes_.size() &&
                     std::equal(oldNodes.begin(), oldNodes.end(), nodes_.begin(), [](const auto& a, const auto& b) {
                         return a.first == b.first && a.second->same(b.second->labels.view(), b.second->addresses);
                     });
    nodesChanged_ = nodesChanged_ || !sameNodes;
    walked_ = true;
    reset_ = true;
}

bool Model::applyPodChanges(const knp::Update& u, std::string_view nodeName) {
    // Which of two live pods keeps a contested address is the walk's order: let it settle that.
    if (!walked_ || lostClaims_ != 0) return false;
    auto map = std::make_shared<policy::AddrMap>(*ipMap_);  // shares every page it does not write
    std::vector<Node*> leftNodes;
    std::vector<uint32_t> maybeDead;
    size_t pending = pending_.size();
    // The pods as they were leave first, so that an address given up in this update is free
    // for a pod that takes it in the same update.
    for (size_t i = 0; i < u.podChangeCount(); ++i) {
        knp::PodView before = u.podChange(i).before;
        if (!before) continue;
        if (!before.nodeName().empty()) {
            auto it = nodes_.find(before.nodeName());
            if (it == nodes_.end()) return false;
            if (--it->second->pods == 0) leftNodes.push_back(it->second.get());
        }
        if (!indexed(before)) continue;
        // The index must hold this very pod: its tag on each of its addresses.
        uint64_t entry = map->find(before.ips()[0]);
        if (entry == policy::AddrMap::kNone || static_cast<uint32_t>(entry >> 32) != policy::podTagOf(*before.raw()))
            return false;
        for (const knp_addr& a : before.ips())
            if (map->find(a) == entry) map->erase(a);
        auto ident = static_cast<uint32_t>(entry);
        if (ident >= idents_.size() || !idents_[ident].alive) return false;
        if (--idents_[ident].pods == 0) maybeDead.push_back(ident);
        --pods_;
        if (!nodeName.empty() && before.nodeName() == nodeName) locals_.erase(podKey(before));
    }
    for (size_t i = 0; i < u.podChangeCount(); ++i) {
        knp::PodView after = u.podChange(i).after;
        if (!after) continue;
        if (!after.nodeName().empty()) {
            // A new node, or one whose labels or addresses changed: `nodes` peers change.
            auto it = nodes_.find(after.nodeName());
            if (it == nodes_.end() || !it->second->same(after.nodeLabels(), after.nodeAddresses())) return false;
            ++it->second->pods;
        }
        if (!indexed(after)) continue;
        uint32_t ns = namespaceOf(after.podNamespace(), after.namespaceLabels(), true);
        uint32_t id = internIdentity(ns, after.labels());
        ++pods_;
        uint64_t entry = policy::packPodEntry(id, policy::podTagOf(*after.raw()));
        for (const knp_addr& a : after.ips()) {
            if (map->find(a) != policy::AddrMap::kNone) return false;  // another live pod holds it
            map->set(a, entry);
        }
        if (!nodeName.empty() && after.nodeName() == nodeName)
            locals_[podKey(after)] = LocalPod{id, {after.ips().begin(), after.ips().end()}};
    }
    // A node without pods leaves the cluster (and the `nodes` peers that selected it).
    for (const Node* n : leftNodes)
        if (n->pods == 0) return false;
    for (uint32_t ident : maybeDead)
        if (idents_[ident].alive && idents_[ident].pods == 0) buryIdentity(ident);
    // The new identities' peers, now, against the peers there are: build() adds the peers that
    // policies of this update bring, to every identity.
    for (size_t i = pending; i < pending_.size(); ++i) computeIdentityPeers(pending_[i]);
    subjectMembers_.clear();  // a cache for policy changes; recomputed on demand
    ipMap_ = std::move(map);
    return true;
}

// ---------------------------------------------------------------------------------------------
// Building the index
// ---------------------------------------------------------------------------------------------

namespace {

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
    auto it = peerByKey_.find(key);
    if (it != peerByKey_.end()) return it->second;
    uint32_t id = policy::reuseOrGrow(freePeers_, peers_.size(), [&](size_t size) {
        peers_.resize(size);
        peerKeys_.resize(size);
        peerRefs_.resize(size);
    });
    auto peer = std::make_shared<Peer>();
    peer->podsPeer = pods;
    peer->namespaceSelector = p.namespaceSelector;
    peer->podSelector = p.podSelector;
    peers_[id] = std::move(peer);
    peerKeys_[id] = key;
    peerByKey_.emplace(std::move(key), id);
    auto [g, fresh] =
        nsGroupByKey_.try_emplace(p.namespaceSelector.canonical(), static_cast<uint32_t>(nsGroups_.size()));
    if (fresh) nsGroups_.push_back({p.namespaceSelector, {}});
    nsGroups_[g->second].peers.push_back(id);
    if (peerGroup_.size() <= id) peerGroup_.resize(id + 1);
    peerGroup_[id] = g->second;
    freshPeers_.push_back(id);
    peersView_.reset();
    return id;
}

// Peers that no compiled policy names any more (`dropped`) leave the identities' lists and
// their namespaceSelector's group; their ids are free.
void Model::dropPeers(const std::vector<uint32_t>& dropped) {
    if (dropped.empty()) return;
    for (uint32_t pid : dropped) {
        peerByKey_.erase(peerKeys_[pid]);
        peerKeys_[pid].clear();
        uint32_t g = peerGroup_[pid];
        std::vector<uint32_t>& members = nsGroups_[g].peers;
        members.erase(std::find(members.begin(), members.end(), pid));
        if (members.empty()) {
            // The last group takes the empty one's place.
            nsGroupByKey_.erase(nsGroups_[g].selector.canonical());
            if (g + 1 != nsGroups_.size()) {
                nsGroups_[g] = std::move(nsGroups_.back());
                nsGroupByKey_[nsGroups_[g].selector.canonical()] = g;
                for (uint32_t moved : nsGroups_[g].peers) peerGroup_[moved] = g;
            }
            nsGroups_.pop_back();
        }
        peers_[pid].reset();
        freePeers_.push_back(pid);
    }
    for (IdentityIndex& i : identities_)
        i.peers.erase(std::remove_if(i.peers.begin(), i.peers.end(), [&](uint32_t pid) { return !peers_[pid]; }),
                      i.peers.end());
    peersView_.reset();
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
                        for (const auto& [name, node] : nodes_)
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
            cp->peers.insert(cp->peers.end(), c.peers.begin(), c.peers.end());
            cp->rules[dir].push_back(std::move(c));
        }
    }
    std::sort(cp->peers.begin(), cp->peers.end());
    cp->peers.erase(std::unique(cp->peers.begin(), cp->peers.end()), cp->peers.end());
    return cp;
}

// Whether `sel` matches identity `ident` of namespace `ns`: `nsMatch` (the namespace's current
// labels, tested once) unless the identity still carries other namespace labels.
bool Model::nsMatches(const policy::LabelSelector& sel, const Namespace& ns, bool nsMatch, uint32_t ident) const {
    const Identity& c = idents_[ident];
    return c.nsLabels == ns.labels ? nsMatch : sel.matches(c.nsLabels->view());
}

// Which identities each of `peers` holds: one namespaceSelector test per distinct selector and
// namespace, then podSelectors over that namespace's identities.
void Model::computeMembers(const std::vector<uint32_t>& peers) {
    std::map<std::string, std::vector<uint32_t>> byNsSelector;
    for (uint32_t id : peers) byNsSelector[peers_[id]->namespaceSelector.canonical()].push_back(id);
    for (const auto& [text, ids] : byNsSelector) {
        const policy::LabelSelector& nsSel = peers_[ids[0]]->namespaceSelector;
        for (const Namespace& ns : namespaces_) {
            if (ns.identities.empty()) continue;
            bool nsMatch = nsSel.matches(ns.labels->view());
            if (!nsMatch && ns.stale == 0) continue;
            for (uint32_t ident : ns.identities) {
                if (ns.stale != 0 && !nsMatches(nsSel, ns, nsMatch, ident)) continue;
                for (uint32_t pid : ids) {
                    const Peer& peer = *peers_[pid];
                    if (peer.podsPeer && !peer.podSelector.matches(idents_[ident].labels->view())) continue;
                    std::vector<uint32_t>& list = identities_[ident].peers;
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

// The peers one (new) identity belongs to: one test per distinct namespaceSelector, then the
// podSelectors of the groups that match.
void Model::computeIdentityPeers(uint32_t ident) {
    const Identity& c = idents_[ident];
    std::vector<uint32_t>& list = identities_[ident].peers;
    list.clear();
    for (const NsGroup& g : nsGroups_) {
        if (!g.selector.matches(c.nsLabels->view())) continue;
        for (uint32_t pid : g.peers) {
            const Peer& peer = *peers_[pid];
            if (!peer.podsPeer || peer.podSelector.matches(c.labels->view())) list.push_back(pid);
        }
    }
    std::sort(list.begin(), list.end());
}

bool Model::selects(const PolicySpec& s, uint32_t ident) const {
    const Identity& c = idents_[ident];
    return s.subjectNamespaces.matches(c.nsLabels->view()) &&
           (s.subjectIsNamespaces || s.subjectPods.matches(c.labels->view()));
}

// The identities a subject selects, computed once per distinct subject while the identities stay.
const std::vector<uint32_t>& Model::subjectMembers(const PolicySpec& s) {
    std::string key = s.subjectIsNamespaces ? "N" + s.subjectNamespaces.canonical()
                                            : "P" + s.subjectNamespaces.canonical() + "\n" + s.subjectPods.canonical();
    auto [it, fresh] = subjectMembers_.try_emplace(std::move(key));
    if (!fresh) return it->second;
    for (const Namespace& ns : namespaces_) {
        if (ns.identities.empty()) continue;
        bool nsMatch = s.subjectNamespaces.matches(ns.labels->view());
        if (!nsMatch && ns.stale == 0) continue;
        for (uint32_t ident : ns.identities)
            if ((ns.stale == 0 || nsMatches(s.subjectNamespaces, ns, nsMatch, ident)) &&
                (s.subjectIsNamespaces || s.subjectPods.matches(idents_[ident].labels->view())))
                it->second.push_back(ident);
    }
    return it->second;
}

// The table of `key` (the policies with rules in `dir`, in order), shared by every identity
// that the same policies select; built from `owners` when no identity uses it yet.
uint32_t Model::acquireTable(int dir, const std::vector<const CompiledPolicy*>& key,
                             const std::vector<std::shared_ptr<const CompiledPolicy>>& owners) {
    auto [it, fresh] = tableByKey_[dir].try_emplace(key, kNone);
    if (fresh) {
        uint32_t id = policy::reuseOrGrow(freeTables_, tables_.size(), [&](size_t size) { tables_.resize(size); });
        TableSlot& slot = tables_[id];
        slot.table = makeTable(owners, dir);
        slot.key = key;
        slot.dir = dir;
        slot.refs = 0;
        it->second = id;
    }
    ++tables_[it->second].refs;
    return it->second;
}

void Model::releaseTable(uint32_t id) {
    TableSlot& slot = tables_[id];
    if (--slot.refs != 0) return;
    tableByKey_[slot.dir].erase(slot.key);
    slot = TableSlot{};
    freeTables_.push_back(id);
}

// One identity's tables: the policies selecting it, in precedence order, per direction.
void Model::assignTables(uint32_t ident, const std::vector<std::shared_ptr<const CompiledPolicy>>& policies) {
    std::vector<std::shared_ptr<const CompiledPolicy>> selecting;
    for (const auto& cp : policies)
        if ((!cp->rules[0].empty() || !cp->rules[1].empty()) && selects(*cp->spec, ident)) selecting.push_back(cp);
    for (int dir = 0; dir < 2; ++dir) {
        std::vector<std::shared_ptr<const CompiledPolicy>> owners;
        std::vector<const CompiledPolicy*> key;
        for (const auto& cp : selecting) {
            if (cp->rules[dir].empty()) continue;
            owners.push_back(cp);
            key.push_back(cp.get());
        }
        identities_[ident].tables[dir] = key.empty() ? kNone : acquireTable(dir, key, owners);
    }
}

// Which policies select each identity, then its RuleTable per direction: one per distinct list
// of policies; a list's table is kept across updates while those policies are unchanged.
void Model::computeSubjects(const std::vector<std::shared_ptr<const CompiledPolicy>>& policies) {
    std::vector<std::vector<uint32_t>> selecting(idents_.size());
    for (uint32_t i = 0; i < policies.size(); ++i)
        if (!policies[i]->rules[0].empty() || !policies[i]->rules[1].empty())
            for (uint32_t ident : subjectMembers(*policies[i]->spec)) selecting[ident].push_back(i);  // in order
    std::map<std::vector<const CompiledPolicy*>, uint32_t> byKey[2];
    std::vector<TableSlot> tables;
    std::vector<const CompiledPolicy*> key;
    for (uint32_t ident = 0; ident < idents_.size(); ++ident) {
        IdentityIndex& ii = identities_[ident];
        ii.tables[0] = ii.tables[1] = kNone;
        if (!idents_[ident].alive) continue;
        for (int dir = 0; dir < 2; ++dir) {
            key.clear();
            for (uint32_t pos : selecting[ident])
                if (!policies[pos]->rules[dir].empty()) key.push_back(policies[pos].get());
            if (key.empty()) continue;
            auto [it, fresh] = byKey[dir].try_emplace(key, static_cast<uint32_t>(tables.size()));
            if (fresh) {
                TableSlot slot;
                if (auto old = tableByKey_[dir].find(key); old != tableByKey_[dir].end()) {
                    slot.table = tables_[old->second].table;
                } else {
                    std::vector<std::shared_ptr<const CompiledPolicy>> owners;
                    for (uint32_t pos : selecting[ident])
                        if (!policies[pos]->rules[dir].empty()) owners.push_back(policies[pos]);
                    slot.table = makeTable(std::move(owners), dir);
                }
                slot.key = key;
                slot.dir = dir;
                tables.push_back(std::move(slot));
            }
            ++tables[it->second].refs;
            ii.tables[dir] = it->second;
        }
    }
    tableByKey_[0] = std::move(byKey[0]);
    tableByKey_[1] = std::move(byKey[1]);
    tables_ = std::move(tables);
    freeTables_.clear();
}

std::shared_ptr<const Index> Model::build(const std::vector<std::shared_ptr<const PolicySpec>>& specs) {
    if (reset_) {
        // The pods were walked: peer members, subjects (and, with other nodes, the compiled
        // policies and their tables: `nodes` peers compile to node addresses) start over.
        if (nodesChanged_) {
            tableByKey_[0].clear();
            tableByKey_[1].clear();
            tables_.clear();
            freeTables_.clear();
        }
        subjectMembers_.clear();
        freshPeers_.clear();
        for (uint32_t id = 0; id < peers_.size(); ++id)
            if (peers_[id]) freshPeers_.push_back(id);
    }
    auto idx = std::make_shared<Index>();
    bool recompile = reset_ && nodesChanged_;
    // The same policies as last time (a pod change alone): nothing to compile or look up.
    bool same = !recompile && specs.size() == lastPolicies_.size() &&
                std::equal(specs.begin(), specs.end(), lastPolicies_.begin(),
                           [](const auto& spec, const auto& cp) { return spec == cp->spec; });
    std::vector<uint32_t> dropped;
    if (same) {
        idx->policies = lastPolicies_;
    } else {
        std::unordered_map<const PolicySpec*, std::shared_ptr<const CompiledPolicy>> compiled;
        idx->policies.reserve(specs.size());
        for (const auto& s : specs) {
            auto it = recompile ? compiled_.end() : compiled_.find(s.get());
            std::shared_ptr<const CompiledPolicy> c;
            if (it != compiled_.end()) {
                c = it->second;
            } else {
                c = compile(s);
                for (uint32_t pid : c->peers) ++peerRefs_[pid];
            }
            compiled.emplace(s.get(), c);
            idx->policies.push_back(std::move(c));
        }
        // The compiled policies that leave give their peers back.
        for (const auto& [spec, c] : compiled_) {
            if (auto it = compiled.find(spec); it != compiled.end() && it->second == c) continue;
            for (uint32_t pid : c->peers)
                if (--peerRefs_[pid] == 0) dropped.push_back(pid);
        }
        compiled_ = std::move(compiled);
    }
    bool policiesChanged = idx->policies != lastPolicies_;
    computeMembers(freshPeers_);
    freshPeers_.clear();
    dropPeers(dropped);
    if (policiesChanged || reset_) {
        computeSubjects(idx->policies);
    } else {
        for (uint32_t ident : pending_)
            if (idents_[ident].alive) assignTables(ident, idx->policies);
    }
    pending_.clear();
    lastPolicies_ = idx->policies;
    reset_ = false;
    nodesChanged_ = false;

    if (!peersView_) peersView_ = std::make_shared<const std::vector<std::shared_ptr<const Peer>>>(peers_);
    idx->peers = peersView_;
    idx->tables.reserve(tables_.size());
    for (const TableSlot& t : tables_) idx->tables.push_back(t.table);
    idx->identities = identities_;
    idx->ipMap = ipMap_;
    idx->locals.reserve(locals_.size());
    for (const auto& [key, l] : locals_) {
        idx->locals.push_back(l);
        for (int dir = 0; dir < 2; ++dir)
            if (identities_[l.identity].tables[dir] != kNone) ++idx->localSubjects[dir];
    }
    idx->pods = pods_;
    idx->identityCount = idents_.size() - freeIdents_.size();
    idx->peerCount = peers_.size() - freePeers_.size();
    idx->tableCount = tables_.size() - freeTables_.size();
    return idx;
}

knp::Interest interestOf(const Index& index) {
    knp::Interest in;
    for (const LocalPod& p : index.locals) {
        const IdentityIndex& i = index.identities[p.identity];
        for (const knp_addr& a : p.ips) {
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
        if (remote.identity != nullptr
                ? sortedContains(remote.identity->peers, peer)
                : (*index_->peers)[peer]->matches(nsLabelsOf(*remote.pod), labelsOf(*remote.pod)))
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
