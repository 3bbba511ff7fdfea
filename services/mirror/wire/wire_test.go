package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

var sum32 = func() (s [32]byte) {
	for i := range s {
		s[i] = byte(i)
	}
	return s
}()

// golden pairs each message with its frame, annotated.
var golden = []struct {
	msg   Msg
	frame string
}{
	{Hello{Version: 1, Name: "web02"},
		"01 07 | 01 | 05 7765623032"},
	{Batch{Gen: 7, Flags: FlagReset | FlagFinal, Items: []Item{
		{Kind: KindDir, Path: "a", Mode: 0o755, MtimeNs: 1},
		{Kind: KindFile, Path: "a/b.html", Mode: 0o644, MtimeNs: -1, Size: 300},
		{Kind: KindSymlink, Path: "a/c", Mode: 0o777, Target: "b.html"},
		{Kind: KindDelete, Path: "a/d"},
	}}, `02 2b | 07 | 03 | 04
		64 00 01 61 ed03 02
		66 01 07 2f622e68746d6c ac02 a403 01
		6c 02 01 63 06 622e68746d6c ff03 00
		78 02 01 64`},
	{Ack{Gen: 300}, "03 02 | ac02"},
	{Request{ID: 5, Path: "x", BlockSize: 700, Blocks: []Block{{Weak: 0x01020304, Strong: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}}},
		"04 12 | 05 | 01 78 | bc05 | 01 | 01020304 0102030405060708"},
	{FileHead{ID: 5, Mode: 0o644, MtimeNs: 1700000000123456789, Size: 1000},
		"05 0f | 05 | 00 | a403 | aab4aed8c7bfce972f | e807"},
	{FileHead{ID: 6, Gone: true}, "05 02 | 06 | 01"},
	{Literal{ID: 5, Data: []byte("hi")}, "06 04 | 05 | 00 | 6869"},
	{Copy{ID: 5, Index: 2, Count: 3}, "07 03 | 05 02 03"},
	{FileEnd{ID: 5, Sum: sum32}, "08 21 | 05 | 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"},
	{Ping{Seq: 1}, "09 01 | 01"},
	{Error{Msg: "no"}, "0a 03 | 02 6e6f"},
}

func frameBytes(s string) []byte { return unhex(strings.ReplaceAll(s, "|", " ")) }

func TestGolden(t *testing.T) {
	for _, g := range golden {
		t.Run(fmt.Sprintf("%T", g.msg), func(t *testing.T) {
			want := frameBytes(g.frame)
			if got := Append(nil, g.msg); !bytes.Equal(got, want) {
				t.Errorf("Append = %x\nwant     %x", got, want)
			}
			m, err := NewReader(bytes.NewReader(want)).Read()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, g.msg) {
				t.Errorf("Read = %+v, want %+v", m, g.msg)
			}
		})
	}
}

func TestStream(t *testing.T) {
	var b []byte
	for _, g := range golden {
		b = Append(b, g.msg)
	}
	r := NewReader(bytes.NewReader(b))
	for _, g := range golden {
		m, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		if m.Type() != g.msg.Type() {
			t.Errorf("got %T, want %T", m, g.msg)
		}
	}
	if _, err := r.Read(); err != io.EOF {
		t.Errorf("at the end: %v, want EOF", err)
	}
}

func TestBatchDeflated(t *testing.T) {
	var items []Item
	for i := range 2000 {
		items = append(items, Item{Kind: KindFile, Path: fmt.Sprintf("sites/default/files/page%04d.html", i), Mode: 0o644, MtimeNs: 1700000000e9 + int64(i), Size: uint64(i * 100)})
	}
	b := Batch{Gen: 1, Flags: FlagReset | FlagFinal, Items: items}
	f := Append(nil, b)
	if len(f) > 2000*12 {
		t.Errorf("2000 items take %d bytes", len(f))
	}
	m, err := NewReader(bytes.NewReader(f)).Read()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, b) {
		t.Error("round trip changed the batch")
	}
}

func TestDeflateInflate(t *testing.T) {
	var d Deflater
	var z Inflater
	for _, data := range [][]byte{bytes.Repeat([]byte("hello "), 1000), bytes.Repeat([]byte{7}, MaxLiteral)} {
		c, ok := d.Deflate(data)
		if !ok {
			t.Fatal("did not compress")
		}
		out, err := z.Inflate(c)
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("inflate: %v", err)
		}
	}
	if _, ok := d.Deflate([]byte{1, 2, 3}); ok {
		t.Error("3 bytes got smaller")
	}
	bomb, _ := d.Deflate(make([]byte, MaxLiteral+1))
	if _, err := z.Inflate(bomb); !errors.Is(err, ErrMalformed) {
		t.Errorf("bomb: %v", err)
	}
	good, _ := d.Deflate(bytes.Repeat([]byte("abc"), 100))
	if _, err := z.Inflate(good[:len(good)-2]); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated: %v", err)
	}
}

func TestMalformed(t *testing.T) {
	for _, tc := range []struct {
		name, frame, msg string
	}{
		{"unknown type", "63 00", "unknown type"},
		{"trailing", "03 03 | ac02 00", "trailing"},
		{"short ack", "03 00", "bad uvarint"},
		{"huge string", "0a 03 | ff7f 00", "string length"},
		{"bad kind", "02 08 | 01 00 01 | 7a 00 01 61 00", "unknown item kind"},
		{"bad shared prefix", "02 07 | 01 00 01 | 78 05 01 61", "shared path prefix"},
		{"too many items", "02 04 | 01 00 | ff01", "too many items"},
		{"mode too big", "02 0a | 01 00 01 | 64 00 01 61 ff3f 00", "bad mode"},
		{"unknown flags", "02 03 | 01 40 00", "unknown batch flags"},
		{"too many blocks", "04 05 | 01 00 0a 05 00", "too many blocks"},
		{"zero block size", "04 10 | 01 00 00 01 0102030401020304050607 08", "bad block size"},
		{"head status", "05 02 | 01 07", "status"},
		{"literal flag", "06 02 | 01 02", "literal flag"},
		{"short sum", "08 02 | 01 00", "short payload"},
		{"deflate garbage", "02 04 | 01 04 | ffff", "inflating"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(frameBytes(tc.frame))).Read()
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want ErrMalformed with %q", err, tc.msg)
			}
		})
	}
	if _, err := NewReader(bytes.NewReader(unhex("0a ffffff7f"))).Read(); !errors.Is(err, ErrMalformed) {
		t.Errorf("huge payload: %v", err)
	}
	if _, err := NewReader(bytes.NewReader(unhex("0a 05 00"))).Read(); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated frame: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, g := range golden {
		f.Add(frameBytes(g.frame))
	}
	f.Add(Append(nil, Batch{Gen: 1, Items: []Item{{Kind: KindFile, Path: strings.Repeat("a/", 200) + "x", Size: 1}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		for range 16 {
			m, err := r.Read()
			if err != nil {
				return
			}
			// What decodes re-encodes to something that decodes the same.
			again, err := NewReader(bytes.NewReader(Append(nil, m))).Read()
			if err != nil {
				t.Fatalf("re-decoding %+v: %v", m, err)
			}
			if l, ok := m.(Literal); ok {
				l.Data = append([]byte{}, l.Data...)
				m = l
			}
			if !reflect.DeepEqual(normalize(again), normalize(m)) {
				t.Fatalf("round trip: %+v != %+v", again, m)
			}
		}
	})
}

// normalize makes empty and nil slices compare equal.
func normalize(m Msg) Msg {
	switch v := m.(type) {
	case Batch:
		if len(v.Items) == 0 {
			v.Items = nil
		}
		return v
	case Request:
		if len(v.Blocks) == 0 {
			v.Blocks = nil
		}
		return v
	case Literal:
		if len(v.Data) == 0 {
			v.Data = nil
		}
		return v
	}
	return m
}

func FuzzInflate(f *testing.F) {
	var d Deflater
	c, _ := d.Deflate(bytes.Repeat([]byte("abc"), 200))
	f.Add(c)
	f.Add([]byte{0xff, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		var z Inflater
		out, err := z.Inflate(data)
		if err == nil && len(out) > MaxLiteral {
			t.Fatalf("inflated to %d bytes", len(out))
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v is not ErrMalformed", err)
		}
	})
}
