// RAII for the OpenSSL handles the lab server uses, with the host's FreeWith deleter
// (host/sys/handles.hpp holds the host's own; the lab server alone links OpenSSL).
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "sys/handles.hpp"

namespace knp::lab::ossl {

using host::sys::FreeWith;

using Key = std::unique_ptr<EVP_PKEY, FreeWith<EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, FreeWith<X509_free>>;
using Ext = std::unique_ptr<X509_EXTENSION, FreeWith<X509_EXTENSION_free>>;
using Bignum = std::unique_ptr<BIGNUM, FreeWith<BN_free>>;
using Bio = std::unique_ptr<BIO, FreeWith<BIO_free_all>>;

}  // namespace knp::lab::ossl
