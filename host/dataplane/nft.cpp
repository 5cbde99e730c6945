#include "dataplane/nft.hpp"

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/xt_NFQUEUE.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <libnftnl/common.h>

namespace knp::host {

namespace {

// Messages larger than this are split (set elements); the batch page has this much overrun.
constexpr uint32_t kMaxMessage = 1 << 16;
constexpr size_t kElementsPerMessage = 512;

sys::NftExpr expr(const char* name) {
    sys::NftExpr e(nftnl_expr_alloc(name));
    if (!e) throw std::bad_alloc();
    return e;
}

// Big-endian increment of the first `len` bytes; false on overflow.
bool increment(std::array<uint8_t, 16>& k, uint32_t len) {
    for (int i = static_cast<int>(len) - 1; i >= 0; --i) {
        if (++k[static_cast<size_t>(i)] != 0) return true;
    }
    return false;
}

}  // namespace

std::vector<KeyRange> mergeRanges(std::vector<KeyRange> ranges, uint32_t keyLen) {
    std::sort(ranges.begin(), ranges.end());
    std::vector<KeyRange> out;
    for (const KeyRange& r : ranges) {
        if (!out.empty()) {
            // Adjacent or overlapping: extend. (last + 1 >= first, computed without overflow.)
            std::array<uint8_t, 16> next = out.back().last;
            bool fits = increment(next, keyLen);
            if (!fits || r.first <= next) {
                if (out.back().last < r.last) out.back().last = r.last;
                continue;
            }
        }
        out.push_back(r);
    }
    return out;
}

// ---------------------------------------------------------------------------------------------

NftRuleBuilder::NftRuleBuilder(uint16_t family, const std::string& table, const std::string& chain)
    : rule_(nftnl_rule_alloc()) {
    if (!rule_) throw std::bad_alloc();
    nftnl_rule_set_u32(rule_.get(), NFTNL_RULE_FAMILY, family);
    nftnl_rule_set_str(rule_.get(), NFTNL_RULE_TABLE, table.c_str());
    nftnl_rule_set_str(rule_.get(), NFTNL_RULE_CHAIN, chain.c_str());
}

void NftRuleBuilder::add(sys::NftExpr e) { nftnl_rule_add_expr(rule_.get(), e.release()); }

NftRuleBuilder& NftRuleBuilder::metaToReg(uint32_t key) {
    auto e = expr("meta");
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_DREG, NFT_REG_1);
    add(std::move(e));
    return *this;
}

NftRuleBuilder& NftRuleBuilder::ctToReg(uint32_t key) {
    auto e = expr("ct");
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CT_KEY, key);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CT_DREG, NFT_REG_1);
    add(std::move(e));
    return *this;
}

NftRuleBuilder& NftRuleBuilder::payloadToReg(uint32_t base, uint32_t offset, uint32_t len) {
    auto e = expr("payload");
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_BASE, base);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_OFFSET, offset);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_LEN, len);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
    add(std::move(e));
    return *this;
}

NftRuleBuilder& NftRuleBuilder::cmp(uint32_t op, const void* data, uint32_t len) {
    auto e = expr("cmp");
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_OP, op);
    nftnl_expr_set(e.get(), NFTNL_EXPR_CMP_DATA, data, len);
    add(std::move(e));
    return *this;
}

NftRuleBuilder& NftRuleBuilder::bitwiseAnd(const void* mask, uint32_t len) {
    auto e = expr("bitwise");
    std::array<uint8_t, 16> zero{};
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_LEN, len);
    nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_MASK, mask, len);
    nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_XOR, zero.data(), len);
    add(std::move(e));
    return *this;
}

NftRuleBuilder& NftRuleBuilder::lookup(const std::string& set) {
    auto e = expr("lookup");
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
    nftnl_expr_set_str(e.get(), NFTNL_EXPR_LOOKUP_SET, set.c_str());
    add(std::move(e));
    return *this;
}

NftRuleBuilder& NftRuleBuilder::verdict(int32_t v) {
    auto e = expr("immediate");
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(v));
    add(std::move(e));
    return *this;
}

NftRuleBuilder& NftRuleBuilder::jump(const std::string& chain) {
    auto e = expr("immediate");
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(NFT_JUMP));
    nftnl_expr_set_str(e.get(), NFTNL_EXPR_IMM_CHAIN, chain.c_str());
    add(std::move(e));
    return *this;
}

NftRuleBuilder& NftRuleBuilder::queueExpr(uint16_t num, uint16_t total, bool bypass) {
    auto e = expr("queue");
    nftnl_expr_set_u16(e.get(), NFTNL_EXPR_QUEUE_NUM, num);
    nftnl_expr_set_u16(e.get(), NFTNL_EXPR_QUEUE_TOTAL, total);
    // Without the fanout flag several queues are balanced by flow hash: a connection stays on
    // one queue, so its packets get verdicts in order.
    nftnl_expr_set_u16(e.get(), NFTNL_EXPR_QUEUE_FLAGS, bypass ? NFT_QUEUE_FLAG_BYPASS : 0);
    add(std::move(e));
    return *this;
}

NftRuleBuilder& NftRuleBuilder::queueCompat(uint16_t num, uint16_t total, bool bypass) {
    auto e = expr("target");
    xt_NFQ_info_v3 info{};
    info.queuenum = num;
    info.queues_total = total;
    info.flags = bypass ? NFQ_FLAG_BYPASS : 0;
    nftnl_expr_set_str(e.get(), NFTNL_EXPR_TG_NAME, "NFQUEUE");
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_TG_REV, 3);
    // libnftnl takes ownership of the info buffer; hand it a heap copy it will free.
    void* copy = malloc(sizeof info);
    if (copy == nullptr) throw std::bad_alloc();
    std::memcpy(copy, &info, sizeof info);
    nftnl_expr_set(e.get(), NFTNL_EXPR_TG_INFO, copy, sizeof info);
    add(std::move(e));
    return *this;
}

NftRuleBuilder& NftRuleBuilder::metaFromReg(uint32_t key) {
    auto e = expr("meta");
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_SREG, NFT_REG_1);
    add(std::move(e));
    return *this;
}

NftRuleBuilder& NftRuleBuilder::ctLabelSet(uint32_t bit) {
    // Load an immediate 16-byte label mask into reg 1, then `ct label set` from it.
    std::array<uint8_t, 16> labels{};
    labels[bit / 8] = static_cast<uint8_t>(1u << (bit % 8));
    auto imm = expr("immediate");
    nftnl_expr_set_u32(imm.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_1);
    nftnl_expr_set(imm.get(), NFTNL_EXPR_IMM_DATA, labels.data(), labels.size());
    add(std::move(imm));
    auto e = expr("ct");
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CT_KEY, NFT_CT_LABELS);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CT_SREG, NFT_REG_1);
    add(std::move(e));
    return *this;
}

// ---------------------------------------------------------------------------------------------

NftTransaction::NftTransaction(uint16_t family, std::string table)
    : family_(family),
      table_(std::move(table)),
      batch_(nftnl_batch_alloc(static_cast<uint32_t>(getpagesize()) * 32, kMaxMessage)),
      seq_(static_cast<uint32_t>(time(nullptr))) {
    if (!batch_) throw std::bad_alloc();
    firstSeq_ = seq_;
    nftnl_batch_begin(static_cast<char*>(nftnl_batch_buffer(batch_.get())), seq_++);
    nftnl_batch_update(batch_.get());
}

// Objects naming this transaction's table (and a chain or set in it): every message starts so.
sys::NftTable NftTransaction::tableObject() const {
    sys::NftTable t(nftnl_table_alloc());
    if (!t) throw std::bad_alloc();
    nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, family_);
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table_.c_str());
    return t;
}

sys::NftChain NftTransaction::chainObject(const std::string& name) const {
    sys::NftChain c(nftnl_chain_alloc());
    if (!c) throw std::bad_alloc();
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, family_);
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table_.c_str());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, name.c_str());
    return c;
}

sys::NftSet NftTransaction::setObject(const std::string& name) const {
    sys::NftSet set(nftnl_set_alloc());
    if (!set) throw std::bad_alloc();
    nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, family_);
    nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, table_.c_str());
    nftnl_set_set_str(set.get(), NFTNL_SET_NAME, name.c_str());
    return set;
}

nlmsghdr* NftTransaction::next(uint16_t type, uint16_t flags, const std::string& what) {
    what_.push_back(what);
    return nftnl_nlmsg_build_hdr(static_cast<char*>(nftnl_batch_buffer(batch_.get())), type, family_,
                                 static_cast<uint16_t>(flags | NLM_F_ACK), seq_++);
}

void NftTransaction::addTable() {
    sys::NftTable t = tableObject();
    nftnl_table_nlmsg_build_payload(next(NFT_MSG_NEWTABLE, NLM_F_CREATE, "add table " + table_), t.get());
    nftnl_batch_update(batch_.get());
}

void NftTransaction::deleteTable() {
    sys::NftTable t = tableObject();
    nftnl_table_nlmsg_build_payload(next(NFT_MSG_DELTABLE, 0, "delete table " + table_), t.get());
    nftnl_batch_update(batch_.get());
}

void NftTransaction::addBaseChain(const std::string& name, uint32_t hook, int32_t priority) {
    sys::NftChain c = chainObject(name);
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, hook);
    nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, priority);
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, "filter");
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
    nftnl_chain_nlmsg_build_payload(next(NFT_MSG_NEWCHAIN, NLM_F_CREATE, "add base chain " + name), c.get());
    nftnl_batch_update(batch_.get());
}

void NftTransaction::addChain(const std::string& name) {
    sys::NftChain c = chainObject(name);
    nftnl_chain_nlmsg_build_payload(next(NFT_MSG_NEWCHAIN, NLM_F_CREATE, "add chain " + name), c.get());
    nftnl_batch_update(batch_.get());
}

void NftTransaction::flushChain(const std::string& name) {
    // A DELRULE naming only the chain deletes every rule in it (nft flush chain).
    sys::NftRule r(nftnl_rule_alloc());
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, family_);
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table_.c_str());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, name.c_str());
    nftnl_rule_nlmsg_build_payload(next(NFT_MSG_DELRULE, 0, "flush chain " + name), r.get());
    nftnl_batch_update(batch_.get());
}

void NftTransaction::addRule(sys::NftRule rule, const std::string& what) {
    nftnl_rule_nlmsg_build_payload(next(NFT_MSG_NEWRULE, NLM_F_APPEND | NLM_F_CREATE, "add rule " + what), rule.get());
    nftnl_batch_update(batch_.get());
}

void NftTransaction::addIntervalSet(const NftSetSpec& spec) {
    sys::NftSet s = setObject(spec.name);
    nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, NFT_SET_INTERVAL);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, spec.keyType);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, spec.keyLen);
    nftnl_set_set_u32(s.get(), NFTNL_SET_ID, static_cast<uint32_t>(what_.size() + 1));
    nftnl_set_nlmsg_build_payload(next(NFT_MSG_NEWSET, NLM_F_CREATE, "add set " + spec.name), s.get());
    nftnl_batch_update(batch_.get());
}

void NftTransaction::deleteSet(const std::string& name) {
    sys::NftSet s = setObject(name);
    nftnl_set_nlmsg_build_payload(next(NFT_MSG_DELSET, 0, "delete set " + name), s.get());
    nftnl_batch_update(batch_.get());
}

void NftTransaction::flushSet(const std::string& name) {
    // A DELSETELEM without elements empties the set (nft flush set).
    sys::NftSet s = setObject(name);
    nftnl_set_elems_nlmsg_build_payload(next(NFT_MSG_DELSETELEM, 0, "flush set " + name), s.get());
    nftnl_batch_update(batch_.get());
}

void NftTransaction::elements(uint16_t type, uint16_t flags, const NftSetSpec& spec,
                              const std::vector<KeyRange>& ranges, const char* verb) {
    // An interval set (rbtree) holds each range as a start element and an end element (the
    // first key past the range, flagged INTERVAL_END); a range reaching the top of the key
    // space has no end element.
    for (size_t base = 0; base < ranges.size(); base += kElementsPerMessage) {
        sys::NftSet s = setObject(spec.name);
        size_t end = std::min(ranges.size(), base + kElementsPerMessage);
        for (size_t i = base; i < end; ++i) {
            nftnl_set_elem* start = nftnl_set_elem_alloc();
            nftnl_set_elem_set(start, NFTNL_SET_ELEM_KEY, ranges[i].first.data(), spec.keyLen);
            nftnl_set_elem_add(s.get(), start);
            std::array<uint8_t, 16> past = ranges[i].last;
            if (increment(past, spec.keyLen)) {
                nftnl_set_elem* stop = nftnl_set_elem_alloc();
                nftnl_set_elem_set(stop, NFTNL_SET_ELEM_KEY, past.data(), spec.keyLen);
                nftnl_set_elem_set_u32(stop, NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
                nftnl_set_elem_add(s.get(), stop);
            }
        }
        nftnl_set_elems_nlmsg_build_payload(
            next(type, flags, fmt::format("{} {} elements of set {}", verb, end - base, spec.name)), s.get());
        nftnl_batch_update(batch_.get());
    }
}

void NftTransaction::addElements(const NftSetSpec& spec, const std::vector<KeyRange>& ranges) {
    elements(NFT_MSG_NEWSETELEM, NLM_F_CREATE, spec, ranges, "add");
}

void NftTransaction::deleteElements(const NftSetSpec& spec, const std::vector<KeyRange>& ranges) {
    elements(NFT_MSG_DELSETELEM, 0, spec, ranges, "delete");
}

Status NftTransaction::commit() {
    nftnl_batch_end(static_cast<char*>(nftnl_batch_buffer(batch_.get())), seq_++);
    nftnl_batch_update(batch_.get());

    sys::MnlSocket nl(mnl_socket_open(NETLINK_NETFILTER));
    if (!nl) return makeError("nftables: cannot open a netlink socket: {}", std::strerror(errno));
    if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0)
        return makeError("nftables: cannot bind the netlink socket: {}", std::strerror(errno));
    // Big transactions get as many answers as messages: make room for all of them.
    int rcvbuf = static_cast<int>(std::max<size_t>(what_.size() * 256, 1 << 20));
    setsockopt(mnl_socket_get_fd(nl.get()), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);

    int iovlen = nftnl_batch_iovec_len(batch_.get());
    std::vector<iovec> iov(static_cast<size_t>(iovlen));
    nftnl_batch_iovec(batch_.get(), iov.data(), static_cast<uint32_t>(iovlen));
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    msghdr msg{};
    msg.msg_name = &kernel;
    msg.msg_namelen = sizeof kernel;
    msg.msg_iov = iov.data();
    msg.msg_iovlen = iov.size();
    if (sendmsg(mnl_socket_get_fd(nl.get()), &msg, 0) < 0)
        return makeError("nftables: sending the batch failed: {}", std::strerror(errno));

    // One ack or error per message (all carry NLM_F_ACK). On any error the kernel applied
    // nothing; report the first refused message by what it was.
    size_t answers = 0;
    int firstErr = 0;
    std::string failed;
    std::vector<char> buf(1 << 16);
    while (answers < what_.size()) {
        pollfd pfd{mnl_socket_get_fd(nl.get()), POLLIN, 0};
        // After an error the remaining answers are a courtesy: don't wait long for them.
        int pr = poll(&pfd, 1, firstErr != 0 ? 100 : 5000);
        if (pr <= 0 && firstErr != 0) break;
        if (pr <= 0)
            return makeError("nftables: no answer from the kernel after {} of {} messages", answers, what_.size());
        ssize_t n = mnl_socket_recvfrom(nl.get(), buf.data(), buf.size());
        if (n < 0) return makeError("nftables: receiving the answer failed: {}", std::strerror(errno));
        auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data());
        int len = static_cast<int>(n);
        for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
            if (nlh->nlmsg_type != NLMSG_ERROR) continue;
            ++answers;
            auto* err = static_cast<nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
            if (err->error != 0 && firstErr == 0) {
                firstErr = -err->error;
                uint32_t idx = nlh->nlmsg_seq - firstSeq_ - 1;
                failed = idx < what_.size() ? what_[idx] : fmt::format("message seq {}", nlh->nlmsg_seq);
            }
        }
    }
    if (firstErr != 0)
        return makeError("nftables: table {}: the kernel refused \"{}\": {}", table_, failed, std::strerror(firstErr));
    return okStatus();
}

}  // namespace knp::host
