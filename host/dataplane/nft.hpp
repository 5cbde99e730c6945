// nftables over netlink (libnftnl + libmnl), no `nft` binary: one transaction = one batch,
// built completely and then sent once, so the kernel applies all of it or none of it.
//
// THREAD: an NftTransaction and an NftSocket belong to the control thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "sys/handles.hpp"

namespace knp::host {

// An inclusive range of keys (addresses or ports), big-endian, `len` bytes used.
struct KeyRange {
    std::array<uint8_t, 16> first{};
    std::array<uint8_t, 16> last{};
    bool operator==(const KeyRange&) const = default;
    bool operator<(const KeyRange& o) const { return first < o.first || (first == o.first && last < o.last); }
};

// nft's key types, for `nft list` to print elements readably.
inline constexpr uint32_t kNftTypeIpv4 = 7;
inline constexpr uint32_t kNftTypeIpv6 = 8;
inline constexpr uint32_t kNftTypeInetService = 13;

struct NftSetSpec {
    std::string name;
    uint32_t keyType = kNftTypeIpv4;
    uint32_t keyLen = 4;
};

// Builds the expressions of one rule.
class NftRuleBuilder {
public:
    NftRuleBuilder(uint16_t family, const std::string& table, const std::string& chain);

    NftRuleBuilder& metaToReg(uint32_t key);                                     // meta KEY → reg 1
    NftRuleBuilder& ctToReg(uint32_t key);                                       // ct KEY → reg 1
    NftRuleBuilder& payloadToReg(uint32_t base, uint32_t offset, uint32_t len);  // payload → reg 1
    NftRuleBuilder& cmp(uint32_t op, const void* data, uint32_t len);            // reg 1 OP data
    NftRuleBuilder& bitwiseAnd(const void* mask, uint32_t len);                  // reg 1 &= mask
    NftRuleBuilder& lookup(const std::string& set);                              // reg 1 in @set
    NftRuleBuilder& verdict(int32_t v);                                          // accept/drop/...
    NftRuleBuilder& jump(const std::string& chain);
    // The nftables `queue` expression (kernels with CONFIG_NFT_QUEUE).
    NftRuleBuilder& queueExpr(uint16_t num, uint16_t total, bool bypass);
    // The xtables NFQUEUE target through nft compat (kernels without the queue expression).
    NftRuleBuilder& queueCompat(uint16_t num, uint16_t total, bool bypass);
    NftRuleBuilder& ctLabelSet(uint32_t bit);   // ct label set BIT
    NftRuleBuilder& metaFromReg(uint32_t key);  // meta KEY set reg 1

    sys::NftRule release() { return std::move(rule_); }

private:
    void add(sys::NftExpr e);
    sys::NftRule rule_;
};

class NftTransaction {
public:
    NftTransaction(uint16_t family, std::string table);

    const std::string& table() const noexcept { return table_; }
    uint16_t family() const noexcept { return family_; }

    void addTable();  // create if absent
    void deleteTable();
    void addBaseChain(const std::string& name, uint32_t hook, int32_t priority);  // create if absent
    void addChain(const std::string& name);                                       // create if absent
    void flushChain(const std::string& name);
    void addRule(sys::NftRule rule, const std::string& what);
    void addIntervalSet(const NftSetSpec& spec);  // create if absent
    void deleteSet(const std::string& name);
    void flushSet(const std::string& name);
    void addElements(const NftSetSpec& spec, const std::vector<KeyRange>& ranges);
    void deleteElements(const NftSetSpec& spec, const std::vector<KeyRange>& ranges);

    size_t size() const noexcept { return what_.size(); }

    // Sends the batch and waits for the kernel's answer to every message. On failure the
    // kernel applied nothing; the error names the first message it refused.
    Status commit();

private:
    sys::NftTable tableObject() const;
    sys::NftChain chainObject(const std::string& name) const;
    sys::NftSet setObject(const std::string& name) const;
    struct nlmsghdr* next(uint16_t type, uint16_t flags, const std::string& what);
    void elements(uint16_t type, uint16_t flags, const NftSetSpec& spec, const std::vector<KeyRange>& ranges,
                  const char* verb);

    uint16_t family_;
    std::string table_;
    sys::NftBatch batch_;
    uint32_t seq_;
    uint32_t firstSeq_;
    std::vector<std::string> what_;  // one description per message, by seq - firstSeq_ - 1
};

// KeyRange helpers: merge overlapping/adjacent ranges; the set difference of two merged lists.
std::vector<KeyRange> mergeRanges(std::vector<KeyRange> ranges, uint32_t keyLen);

}  // namespace knp::host
