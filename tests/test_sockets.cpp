// Sockets below the streams: the loop.sock_* operations (connect, accept, sendall, recv), what
// an operation that finished as its task was cancelled returns, and UDP endpoints. Loopback only.
// SocketAddress, getaddrinfo and Unix sockets are in test_socket_addresses.cpp; closed and reused
// fds, and the order of operations waiting on one socket, in test_socket_fds.cpp.
#include <corio/datagram.hpp>
#include <corio/socket.hpp>
#include <corio/streams.hpp>
#include <corio/testing.hpp>

#include "net_support.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::skip_test;

namespace {

bool have_ipv6() {
    try {
        Socket probe = Socket::create(AF_INET6, SOCK_DGRAM);
        probe.bind(SocketAddress("::1", 0));
        return true;
    } catch (const std::system_error&) {
        return false;
    }
}

Socket listening_socket() {
    Socket listener = Socket::create(AF_INET, SOCK_STREAM);
    listener.bind(SocketAddress("127.0.0.1", 0));
    listener.listen();
    return listener;
}

}  // namespace

CORIO_TEST(SockOps, ConnectAcceptSendallRecvRoundTrip) {
    Socket listener = listening_socket();
    Socket client = Socket::create(AF_INET, SOCK_STREAM);
    co_await sock_connect(client, listener.getsockname());
    std::pair<Socket, SocketAddress> accepted = co_await sock_accept(listener);
    Socket& server = accepted.first;
    // The accepted peer address is the client's own address.
    EXPECT_EQ(accepted.second, client.getsockname());
    EXPECT_EQ(server.getpeername(), client.getsockname());
    EXPECT_EQ(client.getpeername(), listener.getsockname());

    Coro<> sending = sock_sendall(client, std::string("ping"));
    co_await std::move(sending);
    std::string got = co_await sock_recv(server, 100);
    EXPECT_EQ(got, "ping");
    // recv returns at most n bytes.
    Coro<> sending_more = sock_sendall(server, std::string("0123456789"));
    co_await std::move(sending_more);
    std::string first = co_await sock_recv(client, 4);
    std::string rest = co_await sock_recv(client, 100);
    EXPECT_EQ(first, "0123");
    EXPECT_EQ(rest, "456789");
    // An orderly shutdown reads as "".
    server.shutdown(SHUT_WR);
    std::string eof = co_await sock_recv(client, 100);
    EXPECT_EQ(eof, "");
}

namespace {
// Awaits `op`, records what it returned, then awaits once more: where a deferred cancellation
// must arrive.
template <class T>
Coro<> await_then_sleep(Coro<T> op, std::vector<std::string>* journal, std::optional<T>* got) {
    journal->push_back("waiting");  // and the await below suspends in this same step
    *got = co_await std::move(op);
    journal->push_back("returned");
    try {
        co_await sleep(0s);
        journal->push_back("slept");
    } catch (const CancelledError&) {
        journal->push_back("cancelled at the next await");
        throw;
    }
}
}  // namespace

// The bytes were taken from the kernel, and the reader woken, when the cancel came: they are
// returned, and the cancellation comes at the reader's next await. asyncio drops them.
CORIO_TEST(SockLateCancel, BytesReceivedAsTheReaderIsCancelledAreReturned) {
    auto [a, b] = corio_test::unix_socket_pair();
    std::vector<std::string> journal;
    std::optional<std::string> got;
    Task<> reader = create_task(await_then_sleep(sock_recv(a, 100), &journal, &got));
    while (journal.empty()) co_await sleep(0s);  // it waits for bytes (in any ready order)
    CO_ASSERT_EQ(::send(b.fileno(), "late", 4, 0), 4);
    co_await sleep(0s);  // the poll after this tick completes the recv: the reader runs after us
    EXPECT_TRUE(reader.cancel());
    CO_CATCH(CancelledError, cancelled, reader);
    EXPECT_TRUE(cancelled.has_value());
    EXPECT_EQ(got, std::optional<std::string>("late"));
    EXPECT_EQ(journal, (std::vector<std::string>{"waiting", "returned", "cancelled at the next await"}));
}

// The same for a connection accepted as the acceptor is cancelled: it is returned, not closed.
CORIO_TEST(SockLateCancel, ConnectionAcceptedAsTheAcceptorIsCancelledIsReturned) {
    Socket listener = listening_socket();
    std::vector<std::string> journal;
    std::optional<std::pair<Socket, SocketAddress>> got;
    Task<> acceptor = create_task(await_then_sleep(sock_accept(listener), &journal, &got));
    while (journal.empty()) co_await sleep(0s);
    int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CO_ASSERT_TRUE(client >= 0);
    SocketAddress to = listener.getsockname();
    CO_ASSERT_EQ(::connect(client, to.native(), to.length()), 0);  // the backlog takes it at once
    co_await sleep(0s);
    EXPECT_TRUE(acceptor.cancel());
    CO_CATCH(CancelledError, cancelled, acceptor);
    EXPECT_TRUE(cancelled.has_value());
    EXPECT_EQ(journal, (std::vector<std::string>{"waiting", "returned", "cancelled at the next await"}));
    CO_ASSERT_TRUE(got.has_value());
    // Still open: what the client sends arrives.
    CO_ASSERT_EQ(::send(client, "x", 1, 0), 1);
    char byte = 0;
    EXPECT_EQ(::recv(got->first.fileno(), &byte, 1, 0), 1);
    ::close(client);
}

// The same for a datagram: it is returned with its sender, and is not lost.
CORIO_TEST(SockLateCancel, DatagramReceivedAsTheReceiverIsCancelledIsReturned) {
    DatagramOptions options{.local_addr = {"127.0.0.1", 0}};
    DatagramEndpoint server = co_await create_datagram_endpoint(options);
    std::vector<std::string> journal;
    std::optional<std::pair<std::string, SocketAddress>> got;
    Task<> receiver = create_task(await_then_sleep(server.recvfrom(), &journal, &got));
    while (journal.empty()) co_await sleep(0s);
    int sender = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CO_ASSERT_TRUE(sender >= 0);
    SocketAddress to = server.getsockname();
    CO_ASSERT_EQ(::sendto(sender, "dgram", 5, 0, to.native(), to.length()), 5);
    co_await sleep(0s);
    EXPECT_TRUE(receiver.cancel());
    CO_CATCH(CancelledError, cancelled, receiver);
    EXPECT_TRUE(cancelled.has_value());
    EXPECT_EQ(journal, (std::vector<std::string>{"waiting", "returned", "cancelled at the next await"}));
    CO_ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->first, "dgram");
    ::close(sender);
}

// A reader cancelled before anything arrives still gets CancelledError, at once.
CORIO_TEST(SockLateCancel, AReaderCancelledWhileWaitingIsCancelled) {
    auto [a, b] = corio_test::unix_socket_pair();
    std::vector<std::string> journal;
    std::optional<std::string> got;
    Task<> reader = create_task(await_then_sleep(sock_recv(a, 100), &journal, &got));
    while (journal.empty()) co_await sleep(0s);
    EXPECT_TRUE(reader.cancel());
    CO_CATCH(CancelledError, cancelled, reader);
    EXPECT_TRUE(cancelled.has_value());
    EXPECT_EQ(journal, std::vector<std::string>{"waiting"});
    EXPECT_FALSE(got.has_value());
    // Nothing was taken: bytes sent now are there for the next reader.
    CO_ASSERT_EQ(::send(b.fileno(), "next", 4, 0), 4);
    std::string next = co_await sock_recv(a, 100);
    EXPECT_EQ(next, "next");
}

// asyncio's loop.sock_recv(s, 0) returns b'' at once; a recv of 0 bytes used to wait for data.
CORIO_TEST(SockOps, RecvOfZeroBytesReturnsAtOnce) {
    Socket listener = listening_socket();
    Socket client = Socket::create(AF_INET, SOCK_STREAM);
    co_await sock_connect(client, listener.getsockname());
    std::pair<Socket, SocketAddress> accepted = co_await sock_accept(listener);
    auto nothing = wait_for(sock_recv(client, 0), 10s);
    std::string got = co_await std::move(nothing);
    EXPECT_EQ(got, "");
}

CORIO_TEST(SockOps, SendallOfManyMegabytesWhileThePeerReads) {
    Socket listener = listening_socket();
    Socket client = Socket::create(AF_INET, SOCK_STREAM);
    co_await sock_connect(client, listener.getsockname());
    std::pair<Socket, SocketAddress> accepted = co_await sock_accept(listener);
    std::string payload(6 * 1024 * 1024, '\0');
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = char(i % 253);
    Coro<> sending_coro = sock_sendall(client, payload);
    Task<> sending = create_task(std::move(sending_coro));
    std::string got;
    while (got.size() < payload.size()) {
        std::string piece = co_await sock_recv(accepted.first, 65536);
        CO_ASSERT_FALSE(piece.empty());
        got += piece;
    }
    co_await sending;
    EXPECT_TRUE(got == payload);
}

CORIO_TEST(SockOps, ConnectRefusedAndRecvOnResetPeer) {
    std::uint16_t port;
    {
        Socket s = Socket::create(AF_INET, SOCK_STREAM);
        s.bind(SocketAddress("127.0.0.1", 0));
        port = s.getsockname().port();
    }
    Socket client = Socket::create(AF_INET, SOCK_STREAM);
    CO_CATCH(std::system_error, refused, sock_connect(client, SocketAddress("127.0.0.1", port)));
    CO_ASSERT_TRUE(refused.has_value());
    EXPECT_EQ(refused->code().value(), ECONNREFUSED);

    Socket listener = listening_socket();
    Socket a = Socket::create(AF_INET, SOCK_STREAM);
    co_await sock_connect(a, listener.getsockname());
    std::pair<Socket, SocketAddress> b = co_await sock_accept(listener);
    ::linger hard{1, 0};
    ::setsockopt(b.first.fileno(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    b.first.close();
    CO_CATCH(std::system_error, reset, sock_recv(a, 10));
    CO_ASSERT_TRUE(reset.has_value());
    EXPECT_EQ(reset->code().value(), ECONNRESET);
}

// A connect cancelled while the kernel still works on it (its SYN dropped by a full backlog),
// then retried: io_uring gave the kernel's EALREADY at once; asyncio, and epoll, wait for the
// first attempt and connect (found by the datagram and socket hunt). Takes the kernel's first
// SYN retransmission, about a second.
CORIO_TEST(SockOps, AConnectRetriedAfterACancelledOneWaitsForItAndConnects) {
    Socket listener = Socket::create(AF_INET, SOCK_STREAM);
    listener.bind(SocketAddress("127.0.0.1", 0));
    listener.listen(0);
    const SocketAddress address = listener.getsockname();
    Socket filler = Socket::create(AF_INET, SOCK_STREAM);
    ::connect(filler.fileno(), address.native(), address.length());  // EINPROGRESS
    pollfd established{filler.fileno(), POLLOUT, 0};
    CO_ASSERT_EQ(::poll(&established, 1, 5000), 1);  // the kernel's handshake; the backlog is now full

    Socket client = Socket::create(AF_INET, SOCK_STREAM);
    Task<> first = create_task(sock_connect(client, address));
    for (int i = 0; i < 3; ++i) co_await sleep(0ms);
    CO_ASSERT_FALSE(first.done());  // else the backlog did not hold the connect back
    first.cancel();
    CO_CATCH(CancelledError, cancelled, first);
    EXPECT_TRUE(cancelled.has_value());

    std::pair<Socket, SocketAddress> queued = co_await sock_accept(listener);  // room for one more
    Task<std::pair<Socket, SocketAddress>> accepting = create_task(sock_accept(listener));
    // On a machine slow enough that the kernel's retransmitted SYN lands before the retry, the
    // first attempt has connected by then, and the retry meets EISCONN (as asyncio's would).
    CO_CATCH(std::system_error, retry_error, sock_connect(client, address));
    if (retry_error) {
        EXPECT_EQ(retry_error->code().value(), EISCONN) << retry_error->what();
    }
    std::pair<Socket, SocketAddress> accepted = co_await accepting;
    EXPECT_EQ(accepted.second, client.getsockname());
}

CORIO_TEST(SockOps, CancelledRecvLeavesTheSocketUsable) {
    std::size_t ops = get_running_loop().backend().pending();
    Socket listener = listening_socket();
    Socket client = Socket::create(AF_INET, SOCK_STREAM);
    co_await sock_connect(client, listener.getsockname());
    std::pair<Socket, SocketAddress> accepted = co_await sock_accept(listener);
    Coro<std::string> receiving = sock_recv(client, 100);
    Task<std::string> blocked = create_task(std::move(receiving));
    co_await sleep(0ms);
    co_await sleep(0ms);
    EXPECT_FALSE(blocked.done());
    blocked.cancel();
    CO_CATCH(CancelledError, cancelled, blocked);
    EXPECT_TRUE(cancelled.has_value());
    EXPECT_EQ(get_running_loop().backend().pending(), ops);
    Coro<> sending = sock_sendall(accepted.first, std::string("still here"));
    co_await std::move(sending);
    std::string got = co_await sock_recv(client, 100);
    EXPECT_EQ(got, "still here");
}

CORIO_TEST(SockOps, MakeStreamsOverAnAcceptedSocket) {
    Socket listener = listening_socket();
    Coro<StreamPair> connecting = open_connection("127.0.0.1", listener.getsockname().port());
    StreamPair client = co_await std::move(connecting);
    std::pair<Socket, SocketAddress> accepted = co_await sock_accept(listener);
    StreamPair server = make_streams(std::move(accepted.first));
    EXPECT_FALSE(bool(accepted.first));  // the streams own it now
    client.second.write("through make_streams\n");
    std::string line = co_await server.first.readline();
    EXPECT_EQ(line, "through make_streams\n");
    client.second.close();
    server.second.close();
    co_await client.second.wait_closed();
    co_await server.second.wait_closed();
}

CORIO_TEST(Datagram, BoundariesArePreservedAndSendersKnown) {
    DatagramOptions server_options{.local_addr = {"127.0.0.1", 0}};
    DatagramEndpoint server = co_await create_datagram_endpoint(server_options);
    DatagramOptions a_options{.local_addr = {"127.0.0.1", 0}};
    DatagramEndpoint a = co_await create_datagram_endpoint(a_options);
    DatagramOptions b_options{.local_addr = {"127.0.0.1", 0}};
    DatagramEndpoint b = co_await create_datagram_endpoint(b_options);
    SocketAddress to = server.getsockname();
    Coro<> s1 = a.sendto("first", to);
    co_await std::move(s1);
    Coro<> s2 = b.sendto("second, longer", to);
    co_await std::move(s2);
    Coro<> s3 = a.sendto("", to);  // an empty datagram is a datagram
    co_await std::move(s3);
    std::pair<std::string, SocketAddress> d1 = co_await server.recvfrom();
    std::pair<std::string, SocketAddress> d2 = co_await server.recvfrom();
    std::pair<std::string, SocketAddress> d3 = co_await server.recvfrom();
    EXPECT_EQ(d1.first, "first");
    EXPECT_EQ(d1.second, a.getsockname());
    EXPECT_EQ(d2.first, "second, longer");
    EXPECT_EQ(d2.second, b.getsockname());
    EXPECT_EQ(d3.first, "");
    // A datagram larger than max_size is truncated to it.
    Coro<> s4 = a.sendto(std::string(1000, 'x'), to);
    co_await std::move(s4);
    std::pair<std::string, SocketAddress> d4 = co_await server.recvfrom(100);
    EXPECT_EQ(d4.first, std::string(100, 'x'));
}

CORIO_TEST(Datagram, CancelledRecvfromAndTimeout) {
    corio::testing::MockClock clock;
    std::size_t ops = get_running_loop().backend().pending();
    DatagramOptions options{.local_addr = {"127.0.0.1", 0}};
    DatagramEndpoint ep = co_await create_datagram_endpoint(options);
    Coro<std::pair<std::string, SocketAddress>> limited = wait_for(ep.recvfrom(), 2s);
    CO_CATCH(TimeoutError, timed_out, std::move(limited));
    EXPECT_TRUE(timed_out.has_value());
    EXPECT_EQ(get_running_loop().backend().pending(), ops);
    DatagramOptions peer_options{.remote_addr = ep.getsockname()};
    DatagramEndpoint peer = co_await create_datagram_endpoint(peer_options);
    Coro<> sending = peer.send("after the timeout");
    co_await std::move(sending);
    std::pair<std::string, SocketAddress> got = co_await ep.recvfrom();
    EXPECT_EQ(got.first, "after the timeout");
    co_await ep.aclose();
    co_await peer.aclose();
}

CORIO_TEST(Datagram, Ipv6Loopback) {
    if (!have_ipv6()) {
        skip_test("::1 is not available on this machine");
        co_return;
    }
    DatagramOptions server_options{.local_addr = {"::1", 0}};
    DatagramEndpoint server = co_await create_datagram_endpoint(server_options);
    DatagramOptions client_options{.remote_addr = server.getsockname()};
    DatagramEndpoint client = co_await create_datagram_endpoint(client_options);
    Coro<> sending = client.send("v6 datagram");
    co_await std::move(sending);
    std::pair<std::string, SocketAddress> got = co_await server.recvfrom();
    EXPECT_EQ(got.first, "v6 datagram");
    EXPECT_EQ(got.second.family(), AF_INET6);
    EXPECT_EQ(got.second.host(), "::1");
}
