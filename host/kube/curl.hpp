// RAII for the libcurl handles the watch client uses, built on sys::FreeWith like every other C
// handle (host/sys/handles.hpp); curl's free functions appear here and nowhere else.
//
// THREAD: a handle is owned by one thread at a time (libcurl's own rule), except that
// curl_multi_wakeup() may be called on a CurlMulti from any thread.
#pragma once

#include <memory>

#include <curl/curl.h>

#include "common/result.hpp"
#include "sys/handles.hpp"

namespace knp::host::kube {

using CurlEasy = std::unique_ptr<CURL, sys::FreeWith<curl_easy_cleanup>>;
using CurlMulti = std::unique_ptr<CURLM, sys::FreeWith<curl_multi_cleanup>>;
using CurlSlist = std::unique_ptr<curl_slist, sys::FreeWith<curl_slist_free_all>>;
using CurlUrl = std::unique_ptr<CURLU, sys::FreeWith<curl_url_cleanup>>;
using CurlChars = std::unique_ptr<char, sys::FreeWith<curl_free>>;

// curl_global_init, once per process, before the first handle (thread-safe; idempotent).
Status curlGlobalInit();

}  // namespace knp::host::kube
