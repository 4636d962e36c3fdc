package topics

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, ok := range []string{"a", "topics:matrix", "ünïcode", strings.Repeat("x", MaxLen)} {
		if err := Validate(ok); err != nil {
			t.Errorf("Validate(%q) = %v, want nil", ok, err)
		}
	}
	for name, reason := range map[string]string{
		"":                            "empty",
		strings.Repeat("x", MaxLen+1): "longer than 255 bytes",
		"a\nb":                        "control character",
		"a\x7fb":                      "control character",
		"a\u0085b":                    "control character",
		"a\xffb":                      "not valid UTF-8",
	} {
		err := Validate(name)
		if !errors.Is(err, ErrInvalid) || !strings.HasSuffix(err.Error(), "invalid topic: "+reason) {
			t.Errorf("Validate(%q) = %v, want ErrInvalid with %q", name, err, reason)
		}
	}
}

func TestHistoryGoneError(t *testing.T) {
	reset := &HistoryGoneError{Topic: "t", Requested: Position{Epoch: 1, Seq: 3}, Current: Position{Epoch: 2, Seq: 9}}
	if !errors.Is(reset, ErrHistoryGone) || !strings.Contains(reset.Error(), "was reset") {
		t.Errorf("reset: %v", reset)
	}
	evicted := &HistoryGoneError{Topic: "t", Requested: Position{Seq: 3}, Current: Position{Epoch: 2, Seq: 90}, Oldest: 10}
	if !strings.Contains(evicted.Error(), "starts at seq 10") {
		t.Errorf("evicted: %v", evicted)
	}
	unknown := &HistoryGoneError{Topic: "t", Requested: Position{Seq: 3}, Current: Position{Epoch: 2, Seq: 90}}
	if !strings.Contains(unknown.Error(), "epoch 2 seq 90") {
		t.Errorf("oldest unknown: %v", unknown)
	}
	ahead := &HistoryGoneError{Topic: "t", Requested: Position{Epoch: 2, Seq: 99}, Current: Position{Epoch: 2, Seq: 5}}
	if !strings.Contains(ahead.Error(), "has not reached seq 99; the topic is at epoch 2 seq 5") {
		t.Errorf("beyond the head: %v", ahead)
	}
}
