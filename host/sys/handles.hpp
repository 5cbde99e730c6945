// RAII for every C handle the host uses, in one place (house style): each C library's free
// function appears here and nowhere else.
//
// THREAD: a handle is owned by one thread at a time, like the object it wraps.
#pragma once

#include <unistd.h>

#include <memory>
#include <utility>

#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

namespace knp::host::sys {

template <auto Free>
struct FreeWith {
    template <class T>
    void operator()(T* p) const noexcept {
        if (p != nullptr) Free(p);
    }
};

using MnlSocket = std::unique_ptr<mnl_socket, FreeWith<mnl_socket_close>>;
using NftTable = std::unique_ptr<nftnl_table, FreeWith<nftnl_table_free>>;
using NftChain = std::unique_ptr<nftnl_chain, FreeWith<nftnl_chain_free>>;
using NftSet = std::unique_ptr<nftnl_set, FreeWith<nftnl_set_free>>;
using NftSetElem = std::unique_ptr<nftnl_set_elem, FreeWith<nftnl_set_elem_free>>;
using NftRule = std::unique_ptr<nftnl_rule, FreeWith<nftnl_rule_free>>;
using NftExpr = std::unique_ptr<nftnl_expr, FreeWith<nftnl_expr_free>>;
using NftBatch = std::unique_ptr<nftnl_batch, FreeWith<nftnl_batch_free>>;

// A file descriptor.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    ~Fd() { reset(); }
    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    void reset() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_ = -1;
};

}  // namespace knp::host::sys
