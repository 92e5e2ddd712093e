#include "server/event_loop.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/log.h"
#include "server/audit_text.h"

namespace patchgate::server {

namespace {

using SteadyClock = std::chrono::steady_clock;
int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now().time_since_epoch()).count();
}

constexpr int kLingerMs = 500;                 // a closing connection's unread input is discarded this long
constexpr size_t kLingerMaxBytes = 256 << 10;  // ... or up to this much
constexpr int kScanMs = 100;                   // deadlines are checked this often
constexpr size_t kReadChunk = 16384;

// A pool of threads that grows when every thread is busy (up to a cap) and shrinks when
// threads idle. Thread-safe.
class WorkerPool {
 public:
  WorkerPool(int min_threads, int max_threads) : min_(std::max(1, min_threads)), max_(std::max(min_, max_threads)) {
    std::lock_guard<std::mutex> l(mu_);
    for (int i = 0; i < min_; ++i) Spawn();
  }
  ~WorkerPool() {
    std::unique_lock<std::mutex> l(mu_);
    stop_ = true;
    cv_.notify_all();
    gone_.wait(l, [&] { return threads_ == 0; });
  }
  void Post(std::function<void()> job) {
    std::lock_guard<std::mutex> l(mu_);
    jobs_.push_back(std::move(job));
    if (idle_ < static_cast<int>(jobs_.size()) && threads_ < max_) Spawn();
    cv_.notify_one();
  }

 private:
  void Spawn() {  // mu_ held
    ++threads_;
    std::thread([this] {
      pthread_setname_np(pthread_self(), "pg-worker");
      Work();
    }).detach();
  }
  void Work() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      if (jobs_.empty()) {
        if (stop_) break;
        ++idle_;
        bool woke = cv_.wait_for(l, std::chrono::seconds(10), [&] { return stop_ || !jobs_.empty(); });
        --idle_;
        if (!woke && threads_ > min_) break;  // idle for long: shrink
        continue;
      }
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      l.unlock();
      job();
      l.lock();
    }
    --threads_;
    gone_.notify_all();
  }
  const int min_, max_;
  std::mutex mu_;
  std::condition_variable cv_, gone_;
  std::deque<std::function<void()>> jobs_;
  int threads_ = 0, idle_ = 0;
  bool stop_ = false;
};

enum class State { kHandshake, kReading, kWorking, kAwaiting, kWriting, kLingering };

struct Loop;

struct LoopConn {
  std::unique_ptr<Conn> conn;
  Loop* loop = nullptr;
  std::string remote;  // captured text, for the audit record
  uint32_t addr = 0;   // network order
  std::string buf;     // bytes received and not yet consumed
  State state = State::kReading;
  bool first = true;          // no request served yet
  bool close_after = false;   // close once `out` is sent
  bool in_epoll = false;
  bool with_worker = false;   // loop thread only: a worker owns it until it is handed back
  bool responded = false;     // a response just went out: wait for readability before reading
  bool readable = false;      // loop thread only: epoll reported input not read yet (skips that wait)
  uint32_t events = 0;        // registered interest
  int64_t deadline_ms = 0;   // -1: none
  size_t slot = 0;           // loop thread only: its index in Loop::conns and Loop::due
  size_t lingered = 0;
  PendingSend out;
  uint64_t out_taken_before = 0;  // bytes of `out` taken before the last progress check
  // While another thread holds it (with_worker): `back` is set by that thread once the
  // connection is in the loop's hand-back lists; `event_while_away` by the loop when its
  // socket reported an event meanwhile (it is then taken out of epoll, and the thread that
  // hands it back must wake the loop). Both cleared when the loop takes it back.
  std::atomic<bool> back{false}, event_while_away{false};
};

}  // namespace

namespace {

struct Loop {
  ConnectionLoops::Impl* owner = nullptr;
  int epfd = -1, wakefd = -1;
  std::thread thread;
  // The connections on this loop, and beside each (same index) a copy of its deadline that
  // the deadline scan reads instead of the connection: 10,000 held connections are 80 KB of
  // deadlines to compare every 100 ms, not 10,000 scattered structs to fetch (the scan of
  // the structs was 4% of the server's CPU under 1KiB@64 with 10,000 idle connections held;
  // perf, bench/serve_bench.sh). Loop thread only. A copy is never later than the
  // connection's deadline (Impl::Due), except kNoDeadline while another thread holds it.
  std::vector<LoopConn*> conns;
  std::vector<int64_t> due;
  std::mutex mu;                      // guards `returned`
  std::vector<LoopConn*> returned;    // handed back by workers
  std::vector<std::pair<LoopConn*, bool>> ready;  // waits that ended (PendingSend::wait)
  char rbuf[kReadChunk];
  bool listening = false;
  bool cut_done = false;
  // Set by the first Wake() after the loop last looked at `returned` and `ready`; the
  // others then need no write to the eventfd (one wake-up per loop turn, not per answer).
  std::atomic<bool> wake_pending{false};
  // Set while the loop thread waits in epoll_wait with nothing to do.
  std::atomic<bool> idle{false};
  ~Loop() {
    // Only connections still held by another thread are left (an audit commit that never
    // answered within the exit deadline): leaked rather than freed under that thread.
    (void)conns;
    if (epfd >= 0) ::close(epfd);
    if (wakefd >= 0) ::close(wakefd);
  }
  void Wake() {
    if (wake_pending.exchange(true)) return;  // the loop has not yet looked: it will
    uint64_t one = 1;
    ssize_t r = ::write(wakefd, &one, sizeof one);  // edge-triggered: never read back
    (void)r;
  }
};

char kListenTag, kWakeTag;

}  // namespace

struct ConnectionLoops::Impl {
  LoopOptions o;
  int listen_fd;
  ConnectionHandler* handler;
  std::atomic<int>* active;
  std::vector<std::unique_ptr<Loop>> loops;
  std::unique_ptr<WorkerPool> workers;
  std::atomic<bool> stopping{false}, cutting{false}, exiting{false};
  std::atomic<int64_t> exit_deadline_ms{0};
  std::mutex reserve_mu;
  int reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // see Accept
  std::atomic<uint64_t> fd_exhausted{0};
  ~Impl() {
    if (reserve_fd >= 0) ::close(reserve_fd);
  }
  std::atomic<int> detached{0};
  int listening_loops = 0;
  std::mutex addr_mu;
  std::unordered_map<uint32_t, int> per_addr;
  std::mutex run_mu;
  std::condition_variable run_cv;

  // ---- epoll bookkeeping (loop thread) ----
  void SetInterest(Loop& l, LoopConn* c, uint32_t ev) {
    if (c->in_epoll && c->events == ev) return;
    epoll_event e{};
    e.events = ev;
    e.data.ptr = c;
    if (!c->in_epoll) {
      if (::epoll_ctl(l.epfd, EPOLL_CTL_ADD, c->conn->fd(), &e) == 0) c->in_epoll = true;
    } else {
      ::epoll_ctl(l.epfd, EPOLL_CTL_MOD, c->conn->fd(), &e);
    }
    c->events = ev;
  }
  void Unregister(Loop& l, LoopConn* c) {
    if (!c->in_epoll) return;
    ::epoll_ctl(l.epfd, EPOLL_CTL_DEL, c->conn->fd(), nullptr);
    c->in_epoll = false;
    c->events = 0;
  }
  void WaitFor(Loop& l, LoopConn* c) { SetInterest(l, c, c->conn->WantsWrite() ? EPOLLOUT : EPOLLIN); }

  static constexpr int64_t kNoDeadline = INT64_MAX;
  // On the loop thread, after it set c->deadline_ms: the scan's copy follows. (A deadline
  // that another thread moved later, as a send's progress does, is found by the scan when
  // the copy is due, and copied then.)
  static void Due(Loop& l, LoopConn* c) { l.due[c->slot] = c->deadline_ms < 0 ? kNoDeadline : c->deadline_ms; }
  // On the loop thread: a new deadline, and its copy for the scan.
  static void SetDeadline(Loop& l, LoopConn* c, int64_t at_ms) {
    c->deadline_ms = at_ms;
    Due(l, c);
  }
  static void Away(Loop& l, LoopConn* c) { l.due[c->slot] = kNoDeadline; }  // another thread has it

  void Close(Loop& l, LoopConn* c) {
    if (c->out.done) {  // a response cut before the client took it all
      uint64_t taken = c->out.offset > c->out.head.size() ? c->out.offset - c->out.head.size() : 0;
      auto done = std::move(c->out.done);
      c->out.done = nullptr;
      done(taken, false);
    }
    Unregister(l, c);
    {  // out of conns and due: the last one takes its place
      size_t i = c->slot, last = l.conns.size() - 1;
      l.conns[i] = l.conns[last];
      l.due[i] = l.due[last];
      l.conns[i]->slot = i;
      l.conns.pop_back();
      l.due.pop_back();
    }
    {
      std::lock_guard<std::mutex> g(addr_mu);
      auto it = per_addr.find(c->addr);
      if (it != per_addr.end() && --it->second <= 0) per_addr.erase(it);
    }
    delete c;  // closes the socket
    if (active->fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> g(run_mu);
      run_cv.notify_all();
    }
  }

  // ---- accepting ----
  void Accept(Loop& l) {
    for (int i = 0; i < 64 && !stopping; ++i) {
      sockaddr_in peer{};
      socklen_t plen = sizeof peer;
      int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE) {
          // Out of descriptors: the pending connection would keep the listening socket
          // readable (a busy loop). Refuse it through a descriptor held in reserve.
          std::lock_guard<std::mutex> g(reserve_mu);
          if (reserve_fd >= 0) {
            ::close(reserve_fd);
            int fd2 = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd2 >= 0) ::close(fd2);
            reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
          }
          if (++fd_exhausted % 1000 == 1)
            log::Warn("out of file descriptors; refusing new connections (raise the limit or lower --max-connections)", {});
        }
        return;
      }
      uint32_t addr = peer.sin_addr.s_addr;
      if (active->load() >= o.max_connections) {
        ::close(fd);
        continue;
      }
      {
        std::lock_guard<std::mutex> g(addr_mu);
        int& n = per_addr[addr];
        if (n >= o.max_per_address) {
          ::close(fd);
          continue;
        }
        ++n;
      }
      active->fetch_add(1);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto* c = new LoopConn;
      c->conn = o.tls ? MakeTlsConn(fd, o.tls) : MakePlainConn(fd);
      c->conn->set_send_timeout_ms(o.send_timeout_seconds * 1000);
      c->loop = &l;
      c->addr = addr;
      char ip[INET_ADDRSTRLEN] = "";
      inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
      c->remote = CaptureText(ip, kMaxRemoteAddrBytes);
      c->state = o.tls ? State::kHandshake : State::kReading;
      c->deadline_ms = NowMs() + o.header_timeout_seconds * 1000L;
      c->slot = l.conns.size();
      l.conns.push_back(c);
      l.due.push_back(c->deadline_ms);
      SetInterest(l, c, EPOLLIN);
      Step(l, c);  // data may already be there (TCP_DEFER_ACCEPT-like); else waits
    }
  }

  // ---- the state machine (loop thread) ----
  void Step(Loop& l, LoopConn* c) {
    bool drained = false;  // the last read in this step took less than it asked for
    for (;;) {
      switch (c->state) {
        case State::kHandshake: {
          Io r = c->conn->Handshake();
          if (r == Io::kOk) {
            c->state = State::kReading;
            continue;
          }
          if (r == Io::kWouldBlock) return WaitFor(l, c);
          return Close(l, c);
        }
        case State::kReading: {
          // A whole head may already be buffered (pipelined, or read by the worker).
          if (!c->buf.empty()) {
            ParseOutcome out = ParseRequestHead(c->buf, o.limits);
            if (out.error) {
              Refuse(c, out.error->http_status, out.error->reason);
              continue;
            }
            if (out.head) {
              if (!Dispatch(l, c, std::move(*out.head))) return;  // a worker has it now
              continue;
            }
            if (drained && !c->conn->MayHoldInput()) {
              // A part of a head, and the read that brought it took less than it asked for:
              // the socket had no more. Wait for the rest (level-triggered: what came
              // meanwhile is reported at once) instead of a read that would say so: one
              // system call less per partial head (a slowloris drip is one each).
              drained = false;
              return SetInterest(l, c, EPOLLIN);
            }
          }
          if (stopping && c->buf.empty() && !c->first) return Close(l, c);  // draining: idle ones close
          if (c->responded && !c->readable && c->buf.empty() && !c->conn->MayHoldInput()) {
            // Right after a response the next request is rarely there yet: wait for it
            // instead of a read that would say so (level-triggered: if it is there, the
            // next epoll_wait reports it at once).
            c->responded = false;
            return WaitFor(l, c);
          }
          c->responded = false;
          c->readable = false;
          size_t got = 0;
          Io r = c->conn->TryRead(l.rbuf, sizeof l.rbuf, &got);
          if (r == Io::kOk) {
            if (c->buf.empty()) SetDeadline(l, c, NowMs() + o.header_timeout_seconds * 1000L);
            c->buf.append(l.rbuf, got);
            if (c->buf.size() > o.limits.max_header_bytes + kReadChunk) c->buf.resize(o.limits.max_header_bytes + 1);
            drained = got < sizeof l.rbuf;
            continue;
          }
          if (r == Io::kWouldBlock) return WaitFor(l, c);
          return Close(l, c);
        }
        case State::kWriting: {
          PendingSend& p = c->out;
          if (p.wait) {
            // Held until the waiter says so (the audit commit); no thread waits meanwhile.
            auto wait = std::move(p.wait);
            p.wait = nullptr;
            c->state = State::kAwaiting;
            c->with_worker = true;  // its socket stays registered: see RunLoop
            Away(l, c);
            Loop* lp = &l;
            wait([this, lp, c](bool ok) { Ready(*lp, c, ok); });
            return;
          }
          Io r = WriteOut(c);
          if (r == Io::kWouldBlock) return WaitFor(l, c);
          if (r != Io::kOk) return Close(l, c);  // reports the bytes taken, not complete
          if (p.done) {
            auto done = std::move(p.done);
            p.done = nullptr;
            done(p.body.size(), true);
          }
          c->out = PendingSend{};
          if (c->close_after) {
            StartLinger(c);
            continue;
          }
          c->state = State::kReading;
          c->responded = true;
          SetDeadline(l, c, NowMs() + (c->buf.empty() ? o.idle_timeout_seconds : o.header_timeout_seconds) * 1000L);
          continue;
        }
        case State::kLingering: {
          size_t got = 0;
          for (;;) {
            Io r = c->conn->TryRead(l.rbuf, sizeof l.rbuf, &got);
            if (r == Io::kOk) {
              c->lingered += got;
              if (c->lingered > kLingerMaxBytes) return Close(l, c);
              continue;
            }
            if (r == Io::kWouldBlock) return WaitFor(l, c);
            return Close(l, c);
          }
        }
        case State::kWorking:
        case State::kAwaiting:
          return;  // not reached: another thread owns it, and its events are not watched meanwhile
      }
    }
  }

  // Hands `c->out` to the kernel as far as it takes it now (never blocks). kOk: all of it
  // taken; kWouldBlock: the rest waits for writability; otherwise the connection failed.
  // On the thread that owns the connection.
  Io WriteOut(LoopConn* c) {
    PendingSend& p = c->out;
    size_t total = p.head.size() + p.body.size();
    while (p.offset < total) {
      std::string_view a, b;
      if (p.offset < p.head.size()) {
        a = std::string_view(p.head).substr(p.offset);
        b = p.body;
      } else {
        a = p.body.substr(p.offset - p.head.size());
      }
      size_t wrote = 0;
      Io r;
      if (p.offset >= p.head.size() && p.body_fd >= 0 && c->conn->CanSendFile()) {
        size_t done = p.offset - p.head.size();
        r = c->conn->TrySendFile(p.body_fd, p.body_fd_offset + done, p.body.size() - done, &wrote);
      } else if (p.offset < p.head.size() && p.body_fd >= 0 && c->conn->CanSendFile()) {
        r = c->conn->TryWrite(a, {}, true, &wrote);  // the head; the body follows by sendfile
      } else {
        r = c->conn->TryWrite(a, b, false, &wrote);
      }
      p.offset += wrote;
      if (wrote > 0) c->deadline_ms = NowMs() + o.send_timeout_seconds * 1000L;
      if (r != Io::kOk) return r;  // kOk: all of this part taken; the loop ends when all is
    }
    return Io::kOk;
  }

  // A held response's wait ended (PendingSend::wait), on the waiter's thread (an audit
  // thread), which still owns the connection. When the loop is idle, the response is sent
  // from here at once if the socket takes all of it (plain TCP): it leaves without waiting
  // for the loop to wake up, and the loop is not woken for it either; it takes the
  // connection back on its next turn (the client's next request, or its deadline scan).
  // A busy loop sends it itself (no wake-up to save; the audit thread flushes on instead).
  // Anything else goes back to the loop at once.
  void Ready(Loop& l, LoopConn* c, bool ok) {
    bool wake = true;
    if (ok && !cutting && l.idle.load() && c->conn->CanSendFile() && WriteOut(c) == Io::kOk) {
      if (c->out.done) {
        auto done = std::move(c->out.done);
        c->out.done = nullptr;
        done(c->out.body.size(), true);
      }
      c->out = PendingSend{};  // the loop goes on from a sent response
      wake = false;
    }
    {
      std::lock_guard<std::mutex> g(l.mu);
      l.ready.emplace_back(c, ok);
    }
    // After the push: a loop that saw an event for it and took it out of epoll either set
    // event_while_away before this reads it (then woken here), or reads `back` after this
    // set it (then it finds it in the list on that same turn).
    c->back.store(true);
    if (wake || c->event_while_away.load()) l.Wake();
  }

  // The next states set up for Step(): a small response sent from the loop, then reading
  // on or a lingering close.
  void Reply(LoopConn* c, std::string bytes, bool close) {
    c->out = PendingSend{};
    c->out.head = std::move(bytes);
    c->close_after = close;
    c->state = State::kWriting;
    SetDeadline(*c->loop, c, NowMs() + o.send_timeout_seconds * 1000L);
  }
  void Refuse(LoopConn* c, int status, const std::string& reason) {
    c->buf.clear();
    Reply(c, handler->Refusal(status, reason), /*close=*/true);
  }
  void StartLinger(LoopConn* c) {
    c->conn->ShutdownWrite();
    c->state = State::kLingering;
    c->lingered = 0;
    SetDeadline(*c->loop, c, NowMs() + kLingerMs);
  }

  // True: answered on the loop (Step goes on); false: a worker has the connection now.
  bool Dispatch(Loop& l, LoopConn* c, RequestHead head) {
    c->first = false;
    bool keep = head.KeepAlive() && !stopping;
    PendingSend out;
    bool go_on = false;
    if (handler->OnLoop(head, c->remote, keep, &out, &go_on)) {
      c->buf.erase(0, head.head_length);
      c->out = std::move(out);
      c->close_after = !go_on;
      c->state = State::kWriting;
      SetDeadline(l, c, NowMs() + o.send_timeout_seconds * 1000L);
      return true;
    }
    c->state = State::kWorking;
    c->with_worker = true;  // its socket stays registered: see RunLoop
    Away(l, c);
    workers->Post([this, c, head = std::move(head), keep]() mutable { Work(c, std::move(head), keep); });
    return false;
  }

  // ---- a worker's turn ----
  void Work(LoopConn* c, RequestHead head, bool keep) {
    PendingSend later;
    bool go_on = handler->Handle(*c->conn, head, c->remote, keep && !stopping, &later);
    c->buf.erase(0, std::min(head.head_length, c->buf.size()));
    c->close_after = !go_on;
    if (!later.empty()) {
      c->out = std::move(later);
      c->state = State::kWriting;
      c->deadline_ms = NowMs() + o.send_timeout_seconds * 1000L;
    } else if (!go_on) {
      c->state = State::kLingering;  // the loop starts the lingering close
      c->deadline_ms = -1;
    } else {
      c->state = State::kReading;
      c->responded = true;
      c->deadline_ms = NowMs() + (c->buf.empty() ? o.idle_timeout_seconds : o.header_timeout_seconds) * 1000L;
    }
    Loop& l = *c->loop;
    {
      std::lock_guard<std::mutex> g(l.mu);
      l.returned.push_back(c);
    }
    l.Wake();
  }

  void TakeReturned(Loop& l) {
    std::vector<LoopConn*> back;
    std::vector<std::pair<LoopConn*, bool>> ready;
    {
      std::lock_guard<std::mutex> g(l.mu);
      back.swap(l.returned);
      ready.swap(l.ready);
    }
    for (auto [c, ok] : ready) {
      c->with_worker = false;
      c->back.store(false);
      c->event_while_away.store(false);
      c->state = State::kWriting;
      SetDeadline(l, c, NowMs() + o.send_timeout_seconds * 1000L);
      if (!ok) {  // refused: the prepared refusal instead, then close; nothing to complete
        std::string refusal = c->out.refusal ? c->out.refusal() : std::string();
        c->out = PendingSend{};
        c->out.head = std::move(refusal);
        c->close_after = true;
      }
      if (cutting) {
        Close(l, c);
        continue;
      }
      Step(l, c);
    }
    for (LoopConn* c : back) {
      c->with_worker = false;
      c->back.store(false);
      c->event_while_away.store(false);
      if (cutting) {
        Close(l, c);
        continue;
      }
      Due(l, c);  // as the worker left it
      if (c->state == State::kLingering && c->deadline_ms < 0) StartLinger(c);
      Step(l, c);
    }
  }

  void Scan(Loop& l) {
    int64_t now = NowMs();
    std::vector<LoopConn*> due, idle;
    if (cutting || stopping) {  // every connection is looked at
      for (LoopConn* c : l.conns) {
        if (c->with_worker) continue;
        if (cutting) {
          due.push_back(c);
          continue;
        }
        if (c->state == State::kHandshake || (c->state == State::kReading && c->buf.empty())) {
          idle.push_back(c);
          continue;
        }
        if (c->deadline_ms >= 0 && now >= c->deadline_ms) due.push_back(c);
      }
    } else {  // only those whose deadline copy is due
      for (size_t i = 0; i < l.due.size(); ++i) {
        if (l.due[i] > now) continue;
        LoopConn* c = l.conns[i];
        if (c->with_worker) {  // taken back through TakeReturned, which copies its deadline
          l.due[i] = kNoDeadline;
          continue;
        }
        if (c->deadline_ms < 0 || c->deadline_ms > now) {  // moved later meanwhile
          l.due[i] = c->deadline_ms < 0 ? kNoDeadline : c->deadline_ms;
          continue;
        }
        due.push_back(c);
      }
    }
    for (LoopConn* c : idle) Close(l, c);
    for (LoopConn* c : due) {
      if (c->state == State::kReading && !c->buf.empty() && !cutting) {
        Refuse(c, 408, "request head not received in time");  // slowloris
        Step(l, c);
      } else {
        Close(l, c);  // idle, handshake too slow, stalled reader (send timeout), lingering over
      }
    }
    if (cutting && !l.cut_done) {
      // In-flight responses: shut their sockets, so the workers' writes fail now and they
      // complete their records with the bytes sent.
      for (LoopConn* c : l.conns)
        if (c->with_worker) ::shutdown(c->conn->fd(), SHUT_RDWR);
      l.cut_done = true;
    }
  }

  void RunLoop(Loop& l) {
    epoll_event evs[256];
    int64_t next_scan = NowMs() + kScanMs;
    for (;;) {
      if (stopping && l.listening) {
        ::epoll_ctl(l.epfd, EPOLL_CTL_DEL, listen_fd, nullptr);
        l.listening = false;
        std::lock_guard<std::mutex> g(run_mu);
        ++detached;
        run_cv.notify_all();
      }
      if (exiting) {
        TakeReturned(l);  // closes them (cutting)
        std::vector<LoopConn*> rest = l.conns;
        for (LoopConn* c : rest)
          if (!c->with_worker) Close(l, c);
        // A response still held for its audit commit is closed when the answer comes
        // (the audit log answers every begin); give it that time.
        if (l.conns.empty() || NowMs() > exit_deadline_ms) break;
      }
      int timeout = static_cast<int>(std::max<int64_t>(0, next_scan - NowMs()));
      l.idle.store(true);
      int n = ::epoll_wait(l.epfd, evs, 256, timeout);
      l.idle.store(false);
      for (int i = 0; i < n; ++i) {
        void* p = evs[i].data.ptr;
        if (p == &kListenTag) {
          Accept(l);
        } else if (p == &kWakeTag) {
          // Edge-triggered: each Wake() is one event; the counter is never read back.
        } else {
          LoopConn* c = static_cast<LoopConn*>(p);
          // A connection handed to a worker or waiting for its audit commit keeps its
          // registration (two epoll_ctl calls per request saved). Should its socket turn
          // readable meanwhile (a pipelined request, a close), it is taken out until it
          // comes back, so a level-triggered event does not spin.
          // One handed back already (`back`) is taken back after these events, this turn;
          // the event is kept so that it reads at once instead of waiting for the next one.
          if (!c->with_worker) {
            c->readable = (evs[i].events & EPOLLIN) != 0;
            Step(l, c);
          } else if (!c->back.load()) {
            c->event_while_away.store(true);
            Unregister(l, c);
          } else {
            c->readable = (evs[i].events & EPOLLIN) != 0;
          }
        }
      }
      l.wake_pending.store(false);  // before looking: a Wake() from now on writes again
      TakeReturned(l);
      if (NowMs() >= next_scan) {
        Scan(l);
        next_scan = NowMs() + kScanMs;
      }
    }
  }
};

ConnectionLoops::ConnectionLoops(const LoopOptions& options, int listen_fd, ConnectionHandler* handler)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.o = options;
  m.listen_fd = listen_fd;
  m.handler = handler;
  m.active = &active_;
  int n = m.o.loops > 0 ? m.o.loops : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < n; ++i) {
    auto l = std::make_unique<Loop>();
    l->owner = &m;
    l->epfd = ::epoll_create1(EPOLL_CLOEXEC);
    l->wakefd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_event e{};
    e.events = EPOLLIN | EPOLLET;
    e.data.ptr = &kWakeTag;
    ::epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &e);
    // Every loop waits on the one listening socket; EPOLLEXCLUSIVE wakes one of them per
    // connection instead of all.
    e.events = EPOLLIN | EPOLLEXCLUSIVE;
    e.data.ptr = &kListenTag;
    l->listening = ::epoll_ctl(l->epfd, EPOLL_CTL_ADD, listen_fd, &e) == 0;
    m.listening_loops += l->listening ? 1 : 0;
    m.loops.push_back(std::move(l));
  }
}

ConnectionLoops::~ConnectionLoops() = default;

void ConnectionLoops::Stop() {
  impl_->stopping = true;
  for (auto& l : impl_->loops) l->Wake();
  std::lock_guard<std::mutex> g(impl_->run_mu);
  impl_->run_cv.notify_all();
}

void ConnectionLoops::Run(std::chrono::seconds drain) {
  Impl& m = *impl_;
  m.workers = std::make_unique<WorkerPool>(m.o.min_workers, m.o.max_workers);
  for (auto& l : m.loops) {
    Loop* lp = l.get();
    l->thread = std::thread([&m, lp] {
      pthread_setname_np(pthread_self(), "pg-loop");
      m.RunLoop(*lp);
    });
  }
  std::unique_lock<std::mutex> g(m.run_mu);
  m.run_cv.wait(g, [&] { return m.stopping.load(); });
  // Refuse new connections at once: no loop accepts any more, then the socket closes.
  m.run_cv.wait_for(g, std::chrono::seconds(5), [&] { return m.detached.load() >= m.listening_loops; });
  ::close(m.listen_fd);
  // In-flight responses may finish within `drain`; idle keep-alive connections close.
  bool drained = m.run_cv.wait_for(g, drain, [&] { return active_.load() == 0; });
  if (!drained) {
    log::Warn("drain time is up; cutting the downloads still in flight",
              {{"connections", std::to_string(active_.load())}});
    m.cutting = true;
    for (auto& l : m.loops) l->Wake();
    m.run_cv.wait_for(g, std::chrono::seconds(10), [&] { return active_.load() == 0; });
  }
  g.unlock();
  // Workers finish what they hold (their sockets are shut), then the loops end.
  m.cutting = true;
  m.workers.reset();
  m.exit_deadline_ms = NowMs() + 20000;
  m.exiting = true;
  for (auto& l : m.loops) l->Wake();
  for (auto& l : m.loops) l->thread.join();
}

}  // namespace patchgate::server
