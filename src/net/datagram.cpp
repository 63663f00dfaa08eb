#include "corio/datagram.hpp"
#include "corio/lock.hpp"
#include "corio/loop.hpp"
#include "corio/sleep.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace corio {

namespace detail {
struct DatagramState {
    explicit DatagramState(Socket s) : sock(std::move(s)) {
        spare.reserve(kKept);  // giving a buffer back cannot allocate
        // A connected endpoint sends only to its peer (asyncio's ValueError otherwise).
        try {
            peer = sock.getpeername();
        } catch (const std::system_error&) {
        }
    }
    Socket sock;
    std::optional<SocketAddress> peer;
    // On a completion backend a send is made here and retried after readiness waits: sends
    // take turns, so that one made while others wait does not overtake them (epoll's own
    // queue of writers keeps that order).
    Lock send_turn;
    // Receive buffers, kept for the next receive: a datagram is read into one (max_size bytes,
    // 256 KiB by default, never zero-filled) and copied out at its own length, so that a
    // string handed to the caller does not carry max_size bytes of capacity.
    struct Scratch {
        std::unique_ptr<char[]> bytes;
        std::size_t size = 0;
    };
    static constexpr std::size_t kKept = 4;                 // receives pending at once, per endpoint
    static constexpr std::size_t kLargestKept = 256 * 1024;  // a bigger max_size's buffer goes after use
    std::vector<Scratch> spare;
};
}  // namespace detail

namespace {

using detail::DatagramState;

// Lends a receive buffer of at least `size` bytes for one receive (which may outlive the
// endpoint's handle: the operation holds the state).
class LentScratch {
public:
    LentScratch(std::shared_ptr<DatagramState> state, std::size_t size) : state_(std::move(state)) {
        auto& spare = state_->spare;
        auto fits = std::find_if(spare.begin(), spare.end(), [size](const auto& b) { return b.size >= size; });
        if (fits != spare.end()) {
            scratch_ = std::move(*fits);
            spare.erase(fits);
        } else {
            scratch_.bytes = std::make_unique_for_overwrite<char[]>(size);
            scratch_.size = size;
        }
    }
    LentScratch(const LentScratch&) = delete;
    LentScratch& operator=(const LentScratch&) = delete;
    ~LentScratch() {
        auto& spare = state_->spare;
        if (scratch_.size > DatagramState::kLargestKept) return;
        if (spare.size() < DatagramState::kKept) {
            spare.push_back(std::move(scratch_));  // within the reserved capacity
            return;
        }
        // Full: a larger buffer replaces the smallest, so that a few small receives do not
        // leave the default ones allocating afresh.
        auto smallest = std::min_element(spare.begin(), spare.end(), [](const auto& a, const auto& b) { return a.size < b.size; });
        if (smallest->size < scratch_.size) *smallest = std::move(scratch_);
    }
    char* data() const noexcept { return scratch_.bytes.get(); }

private:
    std::shared_ptr<DatagramState> state_;
    DatagramState::Scratch scratch_;
};

constexpr const char* kClosed = "the datagram endpoint is closed";

// The endpoint's fd for an operation that starts now (a moved-from endpoint has no state).
int open_fd(const std::shared_ptr<DatagramState>& state) {
    if (!state) throw std::system_error(EBADF, std::generic_category(), kClosed);
    return detail::fd_for_call(state->sock, kClosed);
}

Coro<std::pair<std::string, SocketAddress>> recv_datagram(std::shared_ptr<DatagramState> state, std::size_t max_size) {
    const int fd = open_fd(state);
    LentScratch buffer(state, max_size);
    SocketAddress from;
    detail::IoAwaiter io;
    io.op.kind = IoOperation::Kind::RecvFrom;
    io.keep_completed = true;
    io.op.fd = fd;
    io.op.buffer = buffer.data();
    io.op.length = max_size;
    io.op.address = from.native();
    io.op.address_length = sizeof(sockaddr_storage);
    long n = co_await io;
    from.set_length(io.op.address_length);
    co_return std::pair<std::string, SocketAddress>(std::string(buffer.data(), std::size_t(n)), from);
}

// A completion backend is not given datagram sends to retry: io_uring, meeting EAGAIN from a
// Unix datagram socket whose peer is full, retried a send the socket had already consumed and
// delivered an empty datagram; an unconnected one (sendto) even came back with EAGAIN. The send
// is made here, and only readiness is waited for. epoll's own path does the same, except for an
// unconnected socket: that one reports itself writable while its receiver is full, and each
// failed sendto() gave a new edge, so epoll retried at once, for ever (a core at 100 %); it
// takes the path with the back-off too.
Coro<> send_datagram(std::shared_ptr<DatagramState> state, std::string data, SocketAddress to, bool connected) {
    const int fd = open_fd(state);
    if (!connected && state->peer) {
        if (to.family() != 0 && to != *state->peer)  // no address: the peer (asyncio's addr=None)
            throw std::invalid_argument("sendto: the endpoint is connected to " + state->peer->to_string() +
                                        ", it cannot send to " + to.to_string());
        connected = true;
    }
    detail::IoAwaiter io;
    io.op.kind = connected ? IoOperation::Kind::Send : IoOperation::Kind::SendTo;
    io.op.fd = fd;
    io.op.buffer = data.data();
    io.op.length = data.size();
    if (!connected) {
        io.op.address = to.native();
        io.op.address_length = to.length();
    }
    if (connected && get_running_loop().backend().readiness_based()) {
        co_await io;
        co_return;
    }
    auto turn_taken = state->send_turn.acquire();
    LockGuard turn = co_await std::move(turn_taken);
    // Closed while this send waited (its fd number may already be another socket's): as a
    // backend cancels what waits on an fd it is told to forget.
    auto check_open = [&state, fd] {
        if (state->sock.fileno() != fd) throw std::system_error(ECANCELED, std::generic_category(), "the datagram endpoint was closed");
    };
    // An unconnected Unix datagram socket polls writable while the receiver is full (only its
    // own buffer counts): when a readiness wait is followed by EAGAIN again, the next retry waits
    // a little longer (1 ms doubling to 64 ms) instead of spinning the loop.
    auto backoff = std::chrono::milliseconds(0);
    for (;;) {
        check_open();
        long r = detail::transfer_now(io.op);
        if (r >= 0) co_return;
        if (r != -EAGAIN) throw std::system_error(int(-r), std::generic_category());
        if (backoff.count() != 0) {
            co_await sleep(backoff);
            backoff = std::min(backoff * 2, std::chrono::milliseconds(64));
            check_open();
        } else {
            backoff = std::chrono::milliseconds(1);
        }
        detail::IoAwaiter writable;
        writable.op.kind = IoOperation::Kind::PollOut;
        writable.op.fd = fd;
        co_await writable;
    }
}

}  // namespace

DatagramEndpoint::DatagramEndpoint(Socket s) : state_(std::make_shared<DatagramState>(std::move(s))) {}

DatagramEndpoint& DatagramEndpoint::operator=(DatagramEndpoint&& other) noexcept {
    if (this != &other) {
        close();
        state_ = std::move(other.state_);
    }
    return *this;
}

void DatagramEndpoint::close() noexcept {
    if (state_) state_->sock.close();
}

SocketAddress DatagramEndpoint::getsockname() const {
    if (!state_) throw std::system_error(EBADF, std::generic_category(), "getsockname");
    return state_->sock.getsockname();
}

Coro<std::pair<std::string, SocketAddress>> DatagramEndpoint::recvfrom(std::size_t max_size) {
    return recv_datagram(state_, max_size);
}

Coro<> DatagramEndpoint::sendto(std::string data, SocketAddress address) {
    return send_datagram(state_, std::move(data), std::move(address), false);
}

Coro<> DatagramEndpoint::send(std::string data) {
    return send_datagram(state_, std::move(data), {}, true);
}

Coro<> DatagramEndpoint::aclose() {
    close();
    co_return;
}

Coro<DatagramEndpoint> create_datagram_endpoint(DatagramOptions options) {
    int family = options.local_addr.family() ? options.local_addr.family()
                 : options.remote_addr.family() ? options.remote_addr.family()
                                                : AF_INET;
    Socket s = Socket::create(family, SOCK_DGRAM);
    if (options.reuse_port) s.set_option(SOL_SOCKET, SO_REUSEPORT, 1);
    if (options.local_addr.family()) {
        detail::remove_stale_unix_socket(options.local_addr);
        s.bind(options.local_addr);
    }
    if (options.remote_addr.family()) co_await sock_connect(s, options.remote_addr);
    co_return DatagramEndpoint(std::move(s));
}

}  // namespace corio
