// How each kind of IoOperation becomes one io_uring submission entry (a one-shot operation with
// the IoOperation as user data). Internal to src/io.
#pragma once

#if defined(CORIO_HAVE_IO_URING)
#include <liburing.h>

#include "corio/backend.hpp"

namespace corio::detail::uring {

void prepare_one_shot(io_uring_sqe& sqe, IoOperation& op) noexcept;

// RecvFrom: the peer address length the kernel wrote into the operation's msghdr.
unsigned received_name_length(const IoOperation& op) noexcept;

}  // namespace corio::detail::uring

#endif
