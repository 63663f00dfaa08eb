// Sockets below the streams: SocketAddress, getaddrinfo, loop.sock_* operations, UDP
// endpoints and Unix-socket servers. Loopback and /tmp only.
#include <corio/datagram.hpp>
#include <corio/server.hpp>
#include <corio/socket.hpp>
#include <corio/streams.hpp>
#include <corio/testing.hpp>
#include <netdb.h>

#include "net_support.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

void skip_test(const std::string& why) { GTEST_SKIP() << why; }

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

TEST(SocketAddress, NumericHostsAndFormatting) {
    SocketAddress v4("127.0.0.1", 8080);
    EXPECT_EQ(v4.family(), AF_INET);
    EXPECT_EQ(v4.host(), "127.0.0.1");
    EXPECT_EQ(v4.port(), 8080);
    EXPECT_EQ(v4.to_string(), "127.0.0.1:8080");
    SocketAddress v6("::1", 443);
    EXPECT_EQ(v6.family(), AF_INET6);
    EXPECT_EQ(v6.host(), "::1");
    EXPECT_EQ(v6.to_string(), "[::1]:443");
    SocketAddress bracketed("[::1]", 443);
    EXPECT_EQ(bracketed, v6);
    SocketAddress any("", 0);
    EXPECT_EQ(any.host(), "0.0.0.0");
    SocketAddress unix_addr = SocketAddress::unix_path("/tmp/x.sock");
    EXPECT_EQ(unix_addr.family(), AF_UNIX);
    EXPECT_EQ(unix_addr.host(), "/tmp/x.sock");
    EXPECT_EQ(unix_addr.port(), 0);
    EXPECT_EQ(unix_addr.to_string(), "/tmp/x.sock");
    EXPECT_NE(SocketAddress("127.0.0.1", 1), SocketAddress("127.0.0.1", 2));
    // Names are not numeric hosts: they go through getaddrinfo().
    EXPECT_THROW(SocketAddress("localhost", 80), std::invalid_argument);
    EXPECT_THROW(SocketAddress::unix_path(std::string(200, 'p')), std::invalid_argument);
}

// An abstract Unix name (a leading NUL) is exactly its bytes, as C and Python spell it: a
// listener bound through corio is reachable by a plain connect() with the usual length.
TEST(SocketAddressUnix, AnAbstractNameIsExactlyItsBytes) {
    std::string name = std::string(1, '\0') + "corio-abstract-" + std::to_string(::getpid());
    SocketAddress address = SocketAddress::unix_path(name);
    EXPECT_EQ(address.host(), name);
    Socket listener = Socket::create(AF_UNIX, SOCK_STREAM);
    listener.bind(address);
    listener.listen();
    int c = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(c, 0);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, name.data(), name.size());
    int r = ::connect(c, reinterpret_cast<sockaddr*>(&un), socklen_t(offsetof(sockaddr_un, sun_path) + name.size()));
    int err = errno;
    ::close(c);
    EXPECT_EQ(r, 0) << std::strerror(err);
}

// sun_path may be filled: an abstract name has no terminator, and a path that fills it goes
// without one, as Python and Linux take it. One byte more is refused.
TEST(SocketAddressUnix, NamesMayFillSunPath) {
    constexpr std::size_t kFull = sizeof(sockaddr_un{}.sun_path);
    std::string name = std::string(1, '\0') + "corio-full-" + std::to_string(::getpid());
    name.resize(kFull, 'n');
    Socket listener = Socket::create(AF_UNIX, SOCK_STREAM);
    listener.bind(SocketAddress::unix_path(name));
    listener.listen();
    EXPECT_EQ(listener.getsockname().host(), name);

    std::string path = "/tmp/corio-full-" + std::to_string(::getpid()) + "-";
    path.resize(kFull, 'p');
    ::unlink(path.c_str());
    Socket bound = Socket::create(AF_UNIX, SOCK_STREAM);
    bound.bind(SocketAddress::unix_path(path));
    EXPECT_EQ(::access(path.c_str(), F_OK), 0);
    EXPECT_EQ(bound.getsockname().host(), path);
    ::unlink(path.c_str());

    EXPECT_THROW(SocketAddress::unix_path(path + "p"), std::invalid_argument);
    EXPECT_THROW(SocketAddress::unix_path(name + "n"), std::invalid_argument);
}

namespace {
// A Unix datagram receiver whose queue is full (filled with raw sends); then one corio send,
// which must wait, and arrive whole once the receiver drains.
Coro<std::string> last_datagram_after_a_full_queue(bool connected) {
    std::string name = std::string(1, '\0') + "corio-dgram-full-" + std::to_string(::getpid()) + (connected ? "c" : "u");
    SocketAddress where = SocketAddress::unix_path(name);
    Socket receiving = Socket::create(AF_UNIX, SOCK_DGRAM);
    receiving.bind(where);
    DatagramEndpoint receiver(std::move(receiving));
    Socket c = Socket::create(AF_UNIX, SOCK_DGRAM);
    if (connected) co_await sock_connect(c, where);
    std::string filler(1000, 'f');
    int queued = 0;
    while (::sendto(c.fileno(), filler.data(), filler.size(), MSG_DONTWAIT, connected ? nullptr : where.native(),
                    connected ? 0 : where.length()) > 0)
        ++queued;
    EXPECT_GT(queued, 0);
    DatagramEndpoint sender(std::move(c));
    Task<> sending = create_task(connected ? sender.send("FIRST") : sender.sendto("FIRST", where));
    for (int i = 0; i < 5; ++i) co_await sleep(0s);
    EXPECT_FALSE(sending.done()) << "the receiver is full: the send waits";
    std::string last;
    for (int i = 0; i <= queued; ++i) {
        auto got = co_await receiver.recvfrom();
        last = got.first;
    }
    co_await sending;
    co_return last;
}
}  // namespace

// io_uring retried a Unix datagram send that had met a full receiver after the socket had taken
// its bytes, and delivered an empty datagram; an unconnected one threw EAGAIN. The datagram
// now waits, then arrives whole, on both backends (asyncio buffers it).
CORIO_TEST(UnixDatagram, ASendToAFullReceiverWaitsAndArrivesWhole) {
    std::string connected = co_await last_datagram_after_a_full_queue(true);
    EXPECT_EQ(connected, "FIRST");
    std::string unconnected = co_await last_datagram_after_a_full_queue(false);
    EXPECT_EQ(unconnected, "FIRST");
}

// A Unix listener whose backlog is full refuses a non-blocking connect with EAGAIN. That is the
// connect's result on both backends: epoll used to wait for writability, which an unconnected
// socket has at once, and reported the socket connected.
CORIO_TEST(UnixConnect, FullBacklogIsAnEagainError) {
    std::string name = std::string(1, '\0') + "corio-backlog-" + std::to_string(::getpid());
    Socket listener = Socket::create(AF_UNIX, SOCK_STREAM);
    listener.bind(SocketAddress::unix_path(name));
    CO_ASSERT_EQ(::listen(listener.fileno(), 0), 0);  // never accepts
    std::vector<StreamPair> queued;
    std::optional<std::system_error> refused;
    for (int i = 0; i < 16 && !refused; ++i) {
        try {
            Coro<StreamPair> connecting = open_unix_connection(name);
            queued.push_back(co_await std::move(connecting));
        } catch (const std::system_error& e) {
            refused = e;
        }
    }
    CO_ASSERT_TRUE(refused.has_value());  // not 16 connections to a backlog of 0
    EXPECT_EQ(refused->code().value(), EAGAIN) << refused->what();
    EXPECT_FALSE(queued.empty());
    for (auto& conn : queued) conn.second.close();
}

// asyncio raises socket.gaierror: corio's code is an EAI_* value in gai_category(), not an
// errno. An unknown family fails before any lookup (no query leaves the machine).
CORIO_TEST(Getaddrinfo, FailureCarriesTheEaiCodeInItsOwnCategory) {
    try {
        Coro<std::vector<SocketAddress>> resolving = getaddrinfo("localhost", 80, 12345);
        (void)co_await std::move(resolving);
        ADD_FAILURE() << "an unknown address family resolved";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code(), std::error_code(EAI_FAMILY, gai_category()));
        EXPECT_STREQ(e.code().category().name(), "getaddrinfo");
        EXPECT_NE(std::string(e.what()).find(::gai_strerror(EAI_FAMILY)), std::string::npos) << e.what();
    }
}

// Python passes "" to the C library, which knows no such host: socket.gaierror (glibc says
// EAI_NONAME; another resolver may say otherwise). corio gave the loopback addresses (it asked
// for a null node).
CORIO_TEST(Getaddrinfo, AnEmptyHostIsAnUnknownNameNotTheLocalHost) {
    try {
        Coro<std::vector<SocketAddress>> resolving = getaddrinfo("", 80);
        std::vector<SocketAddress> got = co_await std::move(resolving);
        ADD_FAILURE() << "\"\" resolved to " << got.size() << " address(es)";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().category(), gai_category()) << e.what();
    }
}

CORIO_TEST(Getaddrinfo, LocalhostResolvesToLoopback) {
    // /etc/hosts answers this: no query leaves the machine.
    Coro<std::vector<SocketAddress>> resolving = getaddrinfo("localhost", 8080);
    std::vector<SocketAddress> addresses = co_await std::move(resolving);
    CO_ASSERT_FALSE(addresses.empty());
    for (const auto& a : addresses) {
        EXPECT_TRUE(a.host() == "127.0.0.1" || a.host() == "::1") << a.to_string();
        EXPECT_EQ(a.port(), 8080);
    }
    Coro<std::vector<SocketAddress>> v4_only = getaddrinfo("localhost", 1, AF_INET);
    std::vector<SocketAddress> v4 = co_await std::move(v4_only);
    CO_ASSERT_FALSE(v4.empty());
    EXPECT_TRUE(std::all_of(v4.begin(), v4.end(), [](const SocketAddress& a) { return a.family() == AF_INET; }));
    // Numeric hosts come straight back.
    Coro<std::vector<SocketAddress>> numeric_coro = getaddrinfo("127.0.0.1", 9);
    std::vector<SocketAddress> numeric = co_await std::move(numeric_coro);
    CO_ASSERT_EQ(numeric.size(), 1u);
    EXPECT_EQ(numeric[0], SocketAddress("127.0.0.1", 9));
}

CORIO_TEST(Getaddrinfo, OpenConnectionByName) {
    auto handler = [](StreamReader reader, StreamWriter writer) -> Coro<> {
        std::string line = co_await reader.readline();
        writer.write("hi " + line);
        co_await writer.drain();
    };
    Coro<Server> starting = start_server(handler, "127.0.0.1", 0);
    Server server = co_await std::move(starting);
    std::uint16_t port = server.sockets()[0].getsockname().port();
    // "localhost" may resolve to ::1 first, where nobody listens: open_connection tries each
    // address in turn.
    Coro<StreamPair> connecting = open_connection("localhost", port);
    StreamPair conn = co_await std::move(connecting);
    conn.second.write("by name\n");
    std::string reply = co_await conn.first.readline();
    EXPECT_EQ(reply, "hi by name\n");
    conn.second.close();
    co_await server.aclose();
}

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

CORIO_TEST(UnixServer, SocketFileIsRemovedOnClose) {
    std::string path = "/tmp/corio-sockets-" + std::to_string(::getpid()) + ".sock";
    ::unlink(path.c_str());
    auto handler = [](StreamReader reader, StreamWriter writer) -> Coro<> {
        std::string data = co_await reader.read(-1);
        writer.write(std::to_string(data.size()));
    };
    Coro<Server> starting = start_unix_server(handler, path);
    Server server = co_await std::move(starting);
    EXPECT_EQ(::access(path.c_str(), F_OK), 0);
    EXPECT_EQ(server.sockets()[0].getsockname().host(), path);
    for (int i = 0; i < 3; ++i) {
        Coro<StreamPair> connecting = open_unix_connection(path);
        StreamPair conn = co_await std::move(connecting);
        conn.second.write(std::string(std::size_t(1000 * (i + 1)), 'u'));
        conn.second.write_eof();
        std::string reply = co_await conn.first.read(-1);
        EXPECT_EQ(reply, std::to_string(1000 * (i + 1)));
        auto peer = conn.second.get_extra_info("peername");
        CO_ASSERT_TRUE(peer.has_value());
        EXPECT_EQ(peer->family(), AF_UNIX);
        EXPECT_EQ(peer->host(), path);
    }
    co_await server.aclose();
    EXPECT_NE(::access(path.c_str(), F_OK), 0);
    Coro<StreamPair> late = open_unix_connection(path);
    CO_CATCH(std::system_error, gone, std::move(late));
    CO_ASSERT_TRUE(gone.has_value());
    EXPECT_EQ(gone->code().value(), ENOENT);
}

// A server restarted on the same path (a new server binds it while the old one still runs):
// closing the old one leaves the new one's socket file alone, as asyncio checks the file's
// inode (it removed the path, and the new server could no longer be reached).
CORIO_TEST(UnixServer, ClosingLeavesASocketFileThatIsNotItsOwn) {
    std::string path = "/tmp/corio-replaced-" + std::to_string(::getpid()) + ".sock";
    ::unlink(path.c_str());
    auto handler = [](StreamReader, StreamWriter writer) -> Coro<> {
        writer.write("hi");
        co_return;
    };
    Coro<Server> starting_old = start_unix_server(handler, path);
    Server old_server = co_await std::move(starting_old);
    Coro<Server> starting_new = start_unix_server(handler, path);
    Server new_server = co_await std::move(starting_new);
    co_await old_server.aclose();
    EXPECT_EQ(::access(path.c_str(), F_OK), 0);
    Coro<StreamPair> connecting = open_unix_connection(path);
    StreamPair conn = co_await std::move(connecting);
    std::string greeting = co_await conn.first.read(-1);
    EXPECT_EQ(greeting, "hi");
    conn.second.close();
    co_await new_server.aclose();
    EXPECT_NE(::access(path.c_str(), F_OK), 0);
}

CORIO_TEST(UnixServer, StartingOverAStaleSocketFile) {
    // A socket file left behind by a crashed server: asyncio's start_unix_server removes a
    // stale socket file before binding.
    std::string path = "/tmp/corio-stale-" + std::to_string(::getpid()) + ".sock";
    {
        Socket stale = Socket::create(AF_UNIX, SOCK_STREAM);
        stale.bind(SocketAddress::unix_path(path));
    }
    auto handler = [](StreamReader, StreamWriter) -> Coro<> { co_return; };
    Coro<Server> starting = start_unix_server(handler, path);
    std::optional<Server> server;
    std::optional<std::system_error> failed;
    try {
        server = co_await std::move(starting);
    } catch (const std::system_error& e) {
        failed = e;
    }
    ::unlink(path.c_str());
    if (failed) {
        skip_test(std::string("corio differs from asyncio: start_unix_server() over a stale socket file fails (") +
                  failed->what() + "); asyncio unlinks a stale socket file first (src/net/server.cpp start_unix_server)");
        co_return;
    }
    co_await server->aclose();
}

// --------------------------------------------------------------------------------------------
// An fd number that comes back for a new socket is a new file to the backend

namespace {

using corio_test::unix_socket_pair;

// A receive that waits (so that the backend knows the fd), then gives up.
Coro<> recv_then_give_up(Socket* s) {
    Task<std::string> receiving = create_task(sock_recv(*s, 10));
    for (int i = 0; i < 3; ++i) co_await sleep(0ms);
    receiving.cancel();
    try {
        co_await receiving;
    } catch (const CancelledError&) {
    }
}

// On a new pair whose first socket should get `expected_fd`: what a waiting receive gets.
Coro<std::string> recv_on_a_new_pair(int expected_fd) {
    corio::testing::MockClock clock;  // a hang shows as a timeout, at once
    auto [a, b] = unix_socket_pair();
    EXPECT_EQ(a.fileno(), expected_fd) << "the new socket should reuse the number";
    Task<std::string> receiving = create_task(sock_recv(a, 10));
    for (int i = 0; i < 3; ++i) co_await sleep(0ms);
    Coro<> sending = sock_sendall(b, "hello");
    co_await std::move(sending);
    Coro<std::string> bounded = wait_for(std::move(receiving), 5s);
    try {
        co_return co_await std::move(bounded);
    } catch (const TimeoutError&) {
    }
    co_return "timeout";
}

struct SocketHolder {
    Socket s;
    Socket peer;
};

Coro<> open_and_wait_once(SocketHolder* h) {
    auto [a, b] = unix_socket_pair();
    h->s = std::move(a);
    h->peer = std::move(b);
    Coro<> waiting = recv_then_give_up(&h->s);
    co_await std::move(waiting);
}

}  // namespace

TEST(SocketClose, ASocketClosedBetweenRunsLeavesTheBackendNothingStale) {
    Runner runner;
    SocketHolder h;
    runner.run(open_and_wait_once(&h));
    int fd = h.s.fileno();
    h.s.close();  // while the loop does not run: its backend must forget the fd all the same
    h.peer.close();
    std::string got = runner.run(recv_on_a_new_pair(fd));
    EXPECT_EQ(got, "hello");
}


namespace {
Coro<> recvfrom_then_give_up(DatagramEndpoint* ep) {
    corio::testing::MockClock clock;
    Coro<std::pair<std::string, SocketAddress>> receiving = ep->recvfrom();
    Coro<std::pair<std::string, SocketAddress>> bounded = wait_for(std::move(receiving), 50ms);
    EXPECT_THROW(co_await std::move(bounded), TimeoutError);
}

Coro<std::string> datagram_on_a_new_endpoint(int expected_fd) {
    corio::testing::MockClock clock;  // a hang shows as a timeout, at once
    Socket s = Socket::create(AF_INET, SOCK_DGRAM);
    EXPECT_EQ(s.fileno(), expected_fd) << "the new socket should reuse the number";
    s.bind(SocketAddress("127.0.0.1", 0));
    DatagramEndpoint ep(std::move(s));
    DatagramOptions sender_options;
    sender_options.remote_addr = ep.getsockname();
    DatagramEndpoint sender = co_await create_datagram_endpoint(sender_options);
    Coro<> sending = sender.send("hello");
    co_await std::move(sending);
    Coro<std::pair<std::string, SocketAddress>> bounded = wait_for(ep.recvfrom(), 5s);
    try {
        auto got = co_await std::move(bounded);
        co_return got.first;
    } catch (const TimeoutError&) {
    }
    co_return "timeout";
}
}  // namespace

// The same through DatagramEndpoint, whose socket was made before any loop ran: its operations
// note the loop as sock_* do, so close() between runs still tells that loop's backend.
TEST(SocketClose, ADatagramEndpointClosedBetweenRunsLeavesTheBackendNothingStale) {
    Socket s = Socket::create(AF_INET, SOCK_DGRAM);
    s.bind(SocketAddress("127.0.0.1", 0));
    int fd = s.fileno();
    DatagramEndpoint ep(std::move(s));
    Runner runner;
    runner.run(recvfrom_then_give_up(&ep));
    ep.close();
    std::string got = runner.run(datagram_on_a_new_endpoint(fd));
    EXPECT_EQ(got, "hello");
}


namespace {
Coro<std::string> recv_once(Socket* s, Socket* peer) {
    Task<std::string> receiving = create_task(sock_recv(*s, 10));
    for (int i = 0; i < 3; ++i) co_await sleep(0ms);  // waits in the backend: it knows the fd
    Coro<> sending = sock_sendall(*peer, "x");
    co_await std::move(sending);
    std::string got = co_await receiving;
    co_return got;
}
}  // namespace

// Socket::release() hands the fd to its new owner, who may close it with ::close: the backend
// forgot it first, so the next file with that number is not left waiting forever.
// An operation the backend refuses at once (a closed socket: epoll says EBADF when it is
// submitted) leaves the task waiting on nothing: a later cancel is delivered, not handed to the
// awaiter that went with the failed call's frame.
CORIO_TEST(SocketFaults, AnOperationRefusedAtSubmitLeavesTheTaskFreeToBeCancelled) {
    auto [a, b] = unix_socket_pair();
    a.close();
    bool refused = false;
    try {
        Coro<std::string> reading = sock_recv(a, 10);
        co_await std::move(reading);
    } catch (const std::system_error&) {
        refused = true;
    }
    EXPECT_TRUE(refused);
    current_task().cancel();
    bool cancelled = false;
    try {
        co_await sleep(0s);
    } catch (const CancelledError&) {
        cancelled = true;
    }
    current_task().uncancel();
    EXPECT_TRUE(cancelled);
}

// A message socket gives one message a read: a read shorter than asked for does not mean the
// socket is drained (epoll used to wait for a next message that never came, with two queued).
CORIO_TEST(SocketFaults, EveryQueuedDatagramIsReceived) {
    corio::testing::MockClock clock;  // a receive that waited for a next edge would time out
    for (int type : {SOCK_DGRAM, SOCK_SEQPACKET}) {
        auto [a, b] = unix_socket_pair(type);
        Coro<std::string> idle = wait_for(sock_recv(b, 100), 1s);  // registers b with the backend
        bool timed_out = false;
        try {
            co_await std::move(idle);
        } catch (const TimeoutError&) {
            timed_out = true;
        }
        EXPECT_TRUE(timed_out);
        CO_ASSERT_EQ(::send(a.fileno(), "one", 3, 0), 3);
        CO_ASSERT_EQ(::send(a.fileno(), "two", 3, 0), 3);
        Coro<std::string> first = wait_for(sock_recv(b, 100), 5s);
        std::string got1 = co_await std::move(first);
        Coro<std::string> second = wait_for(sock_recv(b, 100), 5s);
        std::string got2 = co_await std::move(second);
        EXPECT_EQ(got1, "one") << "type " << type;
        EXPECT_EQ(got2, "two") << "type " << type;
    }
}

// A sock_* call takes the fd when it runs (asyncio's take the socket object): one made before a
// close() and run after it used to receive on the socket that got the fd number meanwhile.
CORIO_TEST(SocketFdReuse, ARecvMadeBeforeTheCloseAndRunAfterItFailsWithEbadf) {
    auto [a, b] = unix_socket_pair();
    Task<std::string> receiving = create_task(sock_recv(a, 100));
    a.close();
    auto [newcomer, peer] = unix_socket_pair();  // likely a's fd number
    CO_ASSERT_EQ(::send(peer.fileno(), "for-newcomer", 12, 0), 12);
    int error = 0;
    try {
        co_await receiving;
    } catch (const std::system_error& e) {
        error = e.code().value();
    }
    EXPECT_EQ(error, EBADF);
    char buffer[100];
    EXPECT_EQ(::recv(newcomer.fileno(), buffer, sizeof buffer, MSG_DONTWAIT), 12) << "the closed socket's receive took its bytes";
}

CORIO_TEST(SocketFdReuse, AReleasedFdClosedByItsNewOwnerDoesNotStrandTheNextFile) {
    auto [a, b] = unix_socket_pair();
    Coro<std::string> first = recv_once(&a, &b);
    std::string got_first = co_await std::move(first);
    EXPECT_EQ(got_first, "x");
    int fd = a.release();
    ::close(fd);
    b.close();
    Coro<std::string> receiving = recv_on_a_new_pair(fd);
    std::string got = co_await std::move(receiving);
    EXPECT_EQ(got, "hello");
}

namespace {
// Three receivers wait on one socket, in order, before anything arrives; then one write brings
// the bytes (stream) or three datagrams come.
Coro<std::vector<std::string>> three_waiting_receivers(int type) {
    auto [a, b] = unix_socket_pair(type);
    std::vector<Task<std::string>> receivers;
    for (int i = 0; i < 3; ++i) {
        receivers.push_back(create_task(sock_recv(b, type == SOCK_STREAM ? 1 : 100)));
        co_await sleep(0s);  // each waits before the next starts
    }
    if (type == SOCK_STREAM) {
        EXPECT_EQ(::send(a.fileno(), "123", 3, 0), 3);
    } else {
        for (const char* d : {"1", "2", "3"}) EXPECT_EQ(::send(a.fileno(), d, 1, 0), 1);
    }
    std::vector<std::string> got;
    for (auto& r : receivers) got.push_back(co_await r);
    co_return got;
}
}  // namespace

// Receivers waiting on one socket take what arrives in the order they began to wait, as on
// epoll (and in asyncio, whose sock_recv waiters queue on the fd's reader). io_uring woke them
// newest first: "2", "3", "1".
CORIO_TEST(SockOrder, ReceiversWaitingOnOneSocketAreServedInTheOrderTheyCame) {
    for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
        Coro<std::vector<std::string>> running = three_waiting_receivers(type);
        std::vector<std::string> got = co_await std::move(running);
        EXPECT_EQ(got, (std::vector<std::string>{"1", "2", "3"})) << "type " << type;
    }
}

// Two datagrams waiting to be sent to a full receiver leave in the order they were sent.
CORIO_TEST(SockOrder, DatagramsWaitingForAFullReceiverLeaveInOrder) {
    auto [a, b] = unix_socket_pair(SOCK_DGRAM);
    std::string filler(1000, 'f');
    int queued = 0;
    while (::send(a.fileno(), filler.data(), filler.size(), MSG_DONTWAIT) > 0) ++queued;
    CO_ASSERT_GT(queued, 0);
    DatagramEndpoint sender(std::move(a));
    Task<> first = create_task(sender.send("first"));
    co_await sleep(0s);
    Task<> second = create_task(sender.send("second"));
    for (int i = 0; i < 3; ++i) co_await sleep(0s);
    EXPECT_FALSE(first.done());
    EXPECT_FALSE(second.done());
    std::vector<std::string> tail;
    for (int i = 0; i < queued + 2; ++i) {
        std::string got = co_await sock_recv(b, 2000);
        if (got != filler) tail.push_back(got);
    }
    co_await first;
    co_await second;
    EXPECT_EQ(tail, (std::vector<std::string>{"first", "second"}));
}

// A receiver cancelled while it waits behind another leaves its place to the next one, and
// nothing it would have taken is lost.
CORIO_TEST(SockOrder, AReceiverCancelledInTheQueueLeavesTheOthersInOrder) {
    auto [a, b] = unix_socket_pair();
    Task<std::string> first = create_task(sock_recv(b, 1));
    co_await sleep(0s);
    Task<std::string> second = create_task(sock_recv(b, 1));
    co_await sleep(0s);
    Task<std::string> third = create_task(sock_recv(b, 1));
    co_await sleep(0s);
    second.cancel();
    for (int i = 0; i < 5 && !second.done(); ++i) co_await sleep(0s);
    EXPECT_TRUE(second.cancelled());
    CO_ASSERT_EQ(::send(a.fileno(), "12", 2, 0), 2);
    std::string got_first = co_await first;
    std::string got_third = co_await third;
    EXPECT_EQ(got_first, "1");
    EXPECT_EQ(got_third, "2");
}
