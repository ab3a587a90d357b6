package fleet

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// report is what a child server answers to "report".
type report struct {
	Arrivals []time.Duration `json:"arrivals"`
	BackAt   []time.Duration `json:"back_at"`
}

// Serve runs a Server for n clients in this process and takes commands,
// one per line, from in: "drop" (answered "dropped UNIXNANO") and
// "report" (answered with one line of JSON). It writes "url URL" first,
// and "back" when every client has come back after the drop. It returns
// when in ends. cmd/fleet -serve runs it in a child process.
func Serve(n int, in io.Reader, out io.Writer) error {
	s, err := startServer(n)
	if err != nil {
		return err
	}
	defer s.Close()
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
	}
	say("url %s", s.URL())
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch cmd := strings.TrimSpace(sc.Text()); cmd {
		case "drop":
			t0, _ := s.Drop()
			go func() {
				<-s.AllBack()
				say("back")
			}()
			say("dropped %d", t0.UnixNano())
		case "report":
			a, b, _ := s.Report()
			j, err := json.Marshal(report{a, b})
			if err != nil {
				return err
			}
			say("%s", j)
		default:
			return fmt.Errorf("fleet: unknown command %q", cmd)
		}
	}
	return sc.Err()
}

// child is a Server in a child process running Serve.
type child struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	url     string
	replies chan string
	allBack chan struct{}
	done    chan error
}

// StartChild returns a Config.Server that runs the server in a child
// process: name with args, a program that calls Serve with its standard
// input and output (cmd/fleet -serve).
func StartChild(name string, args ...string) func(n int) (Server, error) {
	return func(n int) (Server, error) {
		cmd := exec.Command(name, append(args, "-n", strconv.Itoa(n))...)
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		c := &child{cmd: cmd, in: in, replies: make(chan string, 4), allBack: make(chan struct{}), done: make(chan error, 1)}
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<28)
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "url ") {
			_ = in.Close()
			return nil, errors.Join(errors.New("fleet: the server process did not start"), cmd.Wait())
		}
		c.url = strings.TrimPrefix(sc.Text(), "url ")
		go func() {
			for sc.Scan() {
				if sc.Text() == "back" {
					close(c.allBack)
					continue
				}
				c.replies <- sc.Text()
			}
			close(c.replies)
			c.done <- cmd.Wait()
		}()
		return c, nil
	}
}

func (c *child) URL() string { return c.url }

func (c *child) ask(cmd string) (string, error) {
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		return "", err
	}
	select {
	case r, ok := <-c.replies:
		if !ok {
			return "", errors.New("fleet: the server process ended")
		}
		return r, nil
	case <-time.After(time.Minute):
		return "", fmt.Errorf("fleet: no answer to %q", cmd)
	}
}

func (c *child) Drop() (time.Time, error) {
	r, err := c.ask("drop")
	if err != nil {
		return time.Time{}, err
	}
	ns, err := strconv.ParseInt(strings.TrimPrefix(r, "dropped "), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("fleet: bad answer %q", r)
	}
	return time.Unix(0, ns), nil
}

func (c *child) AllBack() <-chan struct{} { return c.allBack }

func (c *child) Report() (arrivals, backAt []time.Duration, err error) {
	r, err := c.ask("report")
	if err != nil {
		return nil, nil, err
	}
	var rep report
	if err := json.Unmarshal([]byte(r), &rep); err != nil {
		return nil, nil, err
	}
	return rep.Arrivals, rep.BackAt, nil
}

func (c *child) Close() error {
	_ = c.in.Close()
	return <-c.done
}
