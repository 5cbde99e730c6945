// knp policy common — a chunked copy-on-write vector: snapshots copy it in O(size / 64) and
// share every chunk the control thread has not changed since.
//
// SPDX-License-Identifier: Apache-2.0
//
// A plugin keeps one mutable CowVector in its index and hands each snapshot a copy. set() on
// a chunk that some copy still shares copies that chunk first, so a copy never changes after
// it was made; an unshared chunk is written in place. That is what keeps an update after one
// policy or pod change proportional to the change rather than to the cluster.
// THREAD: a const CowVector is safe to read from any thread. Mutation, copying and destruction
// of vectors that share chunks belong to one thread (the control thread): sharing is judged by
// use_count(), which only that thread changes.
#ifndef KNP_POLICY_COMMON_COW_VECTOR_HPP
#define KNP_POLICY_COMMON_COW_VECTOR_HPP

#include <array>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace knp::policy {

template <class T, unsigned kChunkBits = 6>
class CowVector {
public:
    static constexpr size_t kChunk = size_t(1) << kChunkBits;

    size_t size() const noexcept { return size_; }
    const T& operator[](size_t i) const noexcept { return (*chunks_[i >> kChunkBits])[i & (kChunk - 1)]; }

    // Grows to `n` elements (value-initialized). Never shrinks: ids are reused instead.
    void resize(size_t n) {
        if (n <= size_) return;
        while (chunks_.size() * kChunk < n) chunks_.push_back(std::make_shared<Chunk>());
        size_ = n;
    }

    void set(size_t i, T v) {
        std::shared_ptr<Chunk>& c = chunks_[i >> kChunkBits];
        if (c.use_count() != 1) c = std::make_shared<Chunk>(*c);
        (*c)[i & (kChunk - 1)] = std::move(v);
    }

private:
    using Chunk = std::array<T, kChunk>;
    std::vector<std::shared_ptr<Chunk>> chunks_;
    size_t size_ = 0;
};

}  // namespace knp::policy

#endif  // KNP_POLICY_COMMON_COW_VECTOR_HPP
