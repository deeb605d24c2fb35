// A client of the web channel's WebSocket, written as the product brief's Go example
// (gorilla/websocket, DefaultDialer, WriteJSON, a ReadJSON loop until is_end), run by
// tests/scenarios/test_web.py:
//
//	go run web_client.go ws://HOST:PORT/v1/chat/ws?token=KEY SESSION ROLE:CONTENT...
//
// It prints the answer's deltas as they come to stdout, and the number of frames to stderr.
package main

import (
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/gorilla/websocket"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type ChatRequest struct {
	Model    string    `json:"model"`
	Session  string    `json:"session"`
	Messages []Message `json:"messages"`
}

type ChatResponse struct {
	Content string `json:"content"`
	IsEnd   bool   `json:"is_end"`
}

func main() {
	if len(os.Args) < 4 {
		log.Fatal("usage: web_client URL SESSION ROLE:CONTENT...")
	}
	url, session := os.Args[1], os.Args[2]
	var messages []Message
	for _, arg := range os.Args[3:] {
		role, content, ok := strings.Cut(arg, ":")
		if !ok {
			log.Fatalf("not ROLE:CONTENT: %q", arg)
		}
		messages = append(messages, Message{Role: role, Content: content})
	}

	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		log.Fatal("dial: ", err)
	}
	defer conn.Close()

	err = conn.WriteJSON(ChatRequest{Model: "glm-4.5", Session: session, Messages: messages})
	if err != nil {
		log.Fatal("write: ", err)
	}
	frames := 0
	for {
		var resp ChatResponse
		if err := conn.ReadJSON(&resp); err != nil {
			log.Fatal("read: ", err)
		}
		frames++
		fmt.Print(resp.Content)
		if resp.IsEnd {
			break
		}
	}
	fmt.Fprintf(os.Stderr, "frames: %d\n", frames)
}
