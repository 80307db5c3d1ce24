package v3

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// ASNumber is a 32-bit BGP autonomous system number. In YAML/JSON it may be
// written as a number (64512), as a string in asplain notation ("64512"), or
// in asdot notation ("1.10" = 1*65536+10), as Calico accepts. It is always
// written back as a number.
//
// +kubebuilder:validation:XIntOrString
// +kubebuilder:validation:Type=""
// +kubebuilder:validation:Format=""
// +kubebuilder:validation:Pattern=`^([0-9]+|[0-9]+\.[0-9]+)$`
type ASNumber uint32

// ParseASNumber parses an AS number in asplain ("4200000000") or asdot
// ("64086.59904") notation.
func ParseASNumber(s string) (ASNumber, error) {
	s = strings.TrimSpace(s)
	if hi, lo, ok := strings.Cut(s, "."); ok {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("invalid AS number %q: asdot parts must be 0..65535", s)
		}
		return ASNumber(h<<16 | l), nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid AS number %q: must be 0..4294967295 or asdot notation", s)
	}
	return ASNumber(n), nil
}

// String is the asplain notation.
func (a ASNumber) String() string { return strconv.FormatUint(uint64(a), 10) }

// MarshalJSON writes the number.
func (a ASNumber) MarshalJSON() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalJSON reads a number or a string in asplain or asdot notation.
func (a *ASNumber) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		n, err := ParseASNumber(s)
		if err != nil {
			return err
		}
		*a = n
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 32)
	if err != nil {
		return fmt.Errorf("invalid AS number %s: must be 0..4294967295", b)
	}
	*a = ASNumber(n)
	return nil
}
